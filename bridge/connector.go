package bridge

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/configupgrade"
	"go.mau.fi/util/exsync"
	"go.mau.fi/util/progver"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/integration"
	"github.com/carebridge/carebridge/internal/loop"
	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
	"github.com/carebridge/carebridge/workflow"
)

// Connector is carebridge's bridgev2 network connector.
type Connector struct {
	Bridge *bridgev2.Bridge
	Config config.Config
	DB     *database.Database
	Staff  *appservice.StaffPolicy
	// Rooms decides how conversation rooms look and who is in them (federation, masking, teams).
	Rooms  *appservice.Rooms
	Secure *securechat.Service
	// Keys seals secure messages and the clinic numbers' Twilio auth tokens at rest.
	Keys *securechat.Keyring
	// NewSimulator builds the simulated SMS provider for network.provider: simulator; set
	// by the binary (cmd/carebridge, from internal/twiliosim), never by the bridge itself.
	NewSimulator func(basePath, publicBase string) Simulator
	// Simulator stands in for Twilio when network.provider is simulator.
	Simulator Simulator
	// Version is the binary's version (set by cmd/carebridge), which the FHIR
	// CapabilityStatement names.
	Version progver.ProgramVersion

	inbound *inboundQueue
	catchUp *catchUp
	// receipts shows delivered texts with the patient's receipt.
	receipts *appservice.DeliveryReceipts
	// Outbox is the one way a text reaches a patient.
	Outbox *outbox.Outbox
	// Conversations is what is done to a conversation (mode, name, links, secure chat).
	Conversations *conversation.Service
	// FollowUps sends the scheduled follow-ups (`!sms later`) when due.
	FollowUps *conversation.FollowUps
	// Alerter texts patients that secure messages wait (and the held-back alerts, reminders).
	Alerter *conversation.Alerter
	// AutoReplies answers patients' texts by the clinic's rules (emergency, after hours).
	AutoReplies *conversation.AutoReplies
	// Responses follows patients' texts and staff replies (waits, reopening, mentions).
	Responses *conversation.Responses
	started   atomic.Bool
	// active is set once this process holds the lease (WaitForLease).
	active atomic.Bool
	// setupLocks make one conversation's room be set up by one caller at a time.
	setupLocks exsync.KeyedMutex[networkid.PortalKey]
	// API is the integration API, nil when no integration is configured.
	API       *integration.Server
	retention *loop.Loop
	auditHead *loop.Loop // nil unless network.audit.head_room is set
	// metrics is nil unless network.metrics.listen is set; its methods accept nil.
	metrics       *metrics.Metrics
	metricsServer *metrics.Server
	// startedAt is when this process began: texts stored before it may have been in flight.
	startedAt time.Time
	// reminded holds when each secure conversation's patient was last reminded of the link.
	reminded sync.Map
	// Clock is the bridge's one clock (workflow.ProcessClock for the binary); real time when nil at Init.
	Clock workflow.Clock
	// roomLanes holds the transactions waiting for their rooms' loops.
	roomLanes roomHandling
	// e2ee is issue 18's spike (e2eepatient.go); an empty type in default builds.
	e2ee *e2eePatients
}

var (
	_ bridgev2.NetworkConnector        = (*Connector)(nil)
	_ bridgev2.ConfigValidatingNetwork = (*Connector)(nil)
	_ bridgev2.StoppableNetwork        = (*Connector)(nil)
)

// Init is called once when the bridge is created, before the config is validated.
func (c *Connector) Init(br *bridgev2.Bridge) {
	c.Bridge = br
	if c.Clock == nil {
		c.Clock = workflow.SystemClock{}
	}
	c.startedAt = time.Now().Truncate(time.Millisecond)
	c.DB = database.New(br.DB.Database, br.Log.With().Str("db_section", "carebridge").Logger())
	if c.Keys != nil {
		// mxmain validated the config (and built the ring) before Init: the audit chain is
		// keyed (HMAC) with the same ring from before anything is served.
		c.DB.Audit.SetKeys(c.Keys)
	}
	// No audit row without its MAC (a ring that failed to build fails the appends).
	c.DB.Audit.RequireKeys()
	c.Rooms = c.newRooms(br)
	// Rooms in parallel, each in order; a transaction answered once its rooms handled it.
	mc, _ := br.Matrix.(*matrix.Connector)
	c.configurePortalQueue(br, mc)
	resetSessionOnOutage(mc)
	if mc, ok := br.Matrix.(*matrix.Connector); ok && mc.Config.Matrix.MessageErrorNotices {
		// bridgev2 sends those with the raw bot intent, unencrypted, into encrypted rooms;
		// carebridge posts its own notices, encrypted.
		br.Log.Warn().Msg("carebridge requires matrix.message_error_notices: false (its own notices are encrypted); using false")
		mc.Config.Matrix.MessageErrorNotices = false
	}
	// Every membership change in the bridge's rooms, whoever made it: members of servers
	// not on federation.allowed_servers are removed (bridgev2 passes on only its own users').
	if mc, ok := br.Matrix.(*matrix.Connector); ok {
		mc.EventProcessor.On(event.StateMember, c.guardMembership)
		c.passOverStaffMembershipFirst(mc) // staff joins are Matrix-only (membership.go)
		c.relayStaffActivityFirst(mc)      // relayed staff's receipts and typing (staffactivity.go)
		mc.EventProcessor.On(event.EventMessage, c.guardStaffMedia)
		// bridgev2 serves HTTP (the provisioning API among it) before Start has run.
		if mc.AS != nil {
			mc.AS.Middleware = append(mc.AS.Middleware, c.untilStarted, createdDMStatus)
			mc.AS.Router.HandleFunc("GET "+ActivePath, c.handleActive)
		}
	}
	c.initE2EEPatient(mc) // a no-op unless built with the e2eepatient tag (issue 18's spike)
}

// untilStarted answers 503 with Retry-After to every request but the homeserver's and
// the liveness check until Start has finished: bridgev2 serves its routes (the
// provisioning API, media, its readiness check) from the moment the Matrix connector
// starts, while the network connector is still upgrading its tables and building what
// requests need. The homeserver's API (/_matrix/app/) is left to bridgev2, which must
// answer the ping during start-up and queues events until it is ready.
func (c *Connector) untilStarted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.started.Load() || strings.HasPrefix(r.URL.Path, "/_matrix/app/") || r.URL.Path == "/_matrix/mau/live" ||
			r.URL.Path == ActivePath {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", "1")
		http.Error(w, "carebridge is starting", http.StatusServiceUnavailable)
	})
}

// ValidateConfig is called by mxmain after the config is loaded, before anything starts.
func (c *Connector) ValidateConfig() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	c.Staff = appservice.NewStaffPolicy(c.Config.StaffInvites)
	// Built before anything is served: a clinic number's auth token is sealed with it.
	keys, err := securechat.KeyringFromConfig(&c.Config.SecureChat)
	if err != nil {
		return err
	}
	c.Keys = keys
	return nil
}

// CheckEncryptionBuilt is called right after the bridge is initialised, before it connects
// anywhere: a config that requires encryption must not run on a build without it, where
// bridgev2 would otherwise only log a warning.
func CheckEncryptionBuilt(cfg *bridgeconfig.Config, mc *matrix.Connector) error {
	if cfg.Encryption.Require && mc.Crypto == nil {
		return ErrEncryptionNotBuilt
	}
	return nil
}

// CheckSafeToStart is called with CheckEncryptionBuilt, before the bridge connects
// anywhere: it refuses a config that would expose patients (the simulator on an address
// other machines reach, rooms that need not be encrypted; config.Config.CheckStart)
// unless network.unsafe overrides it, and logs every override in force as an error.
func CheckSafeToStart(cfg *bridgeconfig.Config, nc *config.Config, log *zerolog.Logger) error {
	warnings, err := nc.CheckStart(config.StartSettings{ListenHost: cfg.AppService.Hostname,
		PublicAddress: cfg.AppService.PublicAddress, EncryptionDefault: cfg.Encryption.Default,
		EncryptionRequire: cfg.Encryption.Require})
	if err != nil {
		return err
	}
	for _, warning := range warnings {
		log.Error().Msg("⚠ UNSAFE CONFIG: " + warning)
	}
	return nil
}

// UnsignedBotWarning is logged once at start when the bridge bot's device is not
// cross-signed (encryption.self_sign off).
const UnsignedBotWarning = "The bridge bot's device is not cross-signed (encryption.self_sign is off): Element shows " +
	"a red shield on the bridge's notices, and staff clients that exclude insecure devices (Element's setting, " +
	"MSC4153) withhold their room keys from it, so no staff message would reach a patient. Set encryption.self_sign " +
	"on Synapse (Dendrite 0.13.8 refuses it: HTTP 401); see the README, \"Running on Synapse\". Patient messages " +
	"still show MISMATCHED_SENDER (the bot's device encrypts them) whatever the setting."

func (c *Connector) warnUnsignedBot(log *zerolog.Logger) {
	if mc, ok := c.Bridge.Matrix.(*matrix.Connector); ok && mc.Crypto != nil && !mc.Config.Encryption.SelfSign {
		log.Warn().Msg(UnsignedBotWarning)
	}
}

// Start is called after the Matrix connector started: it upgrades carebridge's tables,
// mounts the Twilio webhook routes, starts delivering stored inbound texts and starts the
// retention purges.
func (c *Connector) Start(ctx context.Context) error {
	if err := c.DB.Upgrade(ctx); err != nil {
		return bridgev2.DBUpgradeError{Err: err, Section: "carebridge"}
	}
	workflow.WarnTestClock(zerolog.Ctx(ctx), c.Clock)
	c.warnUnsignedBot(zerolog.Ctx(ctx))
	if err := c.startE2EEPatient(); err != nil { // nil unless built with the e2eepatient tag
		return err
	}
	if err := c.startMetrics(); err != nil {
		return err
	}
	router := c.router()
	if router == nil {
		return fmt.Errorf("the Matrix connector has no HTTP server for Twilio webhooks")
	}
	if c.publicBase() == "" {
		// The bridge still runs (existing conversations, commands); linking a number is refused.
		zerolog.Ctx(ctx).Warn().Msg("appservice.public_address is not set: Twilio cannot reach the bridge, " +
			"and linking a clinic number is refused until it is set")
	}
	// The appservice's HTTP server is already serving: the routes answer 503 until the
	// connector has started (the queue, secure chat), so that a webhook arriving during
	// start-up is retried rather than lost or half-handled.
	c.inbound = newInboundQueue(c)
	router.HandleFunc("POST "+inboundPathPrefix+"{login_id}/inbound", c.whenStarted(c.handleInbound))
	router.HandleFunc("POST "+inboundPathPrefix+"{login_id}/status", c.whenStarted(c.handleStatus))
	router.HandleFunc("GET "+mediaPathPrefix+"{token}/{name}", c.whenStarted(c.handleMedia))
	for _, hook := range []string{"inbound", "status"} {
		router.HandleFunc(inboundPathPrefix+"{login_id}/"+hook, c.whenStarted(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Twilio webhooks are POST requests", http.StatusMethodNotAllowed)
		}))
	}
	if c.Config.Provider == config.ProviderSimulator {
		zerolog.Ctx(ctx).Warn().Msg("⚠ network.provider is simulator: NO REAL SMS IS SENT, and the simulated phone page at " +
			c.publicBase() + simulatorPath + "/ shows every simulated patient's texts. For demos only.")
		if c.NewSimulator == nil {
			return fmt.Errorf("network.provider is simulator, but this build has no simulator")
		}
		c.Simulator = c.NewSimulator(simulatorPath, c.publicBase())
		router.Handle(simulatorPath+"/", c.Simulator.Handler())
	}
	// One keyring, with every configured key, for the service and the auth tokens.
	c.Secure = securechat.NewServiceWithKeys(c.DB, &c.Config.SecureChat, c.Keys, c.Config.ClinicName, c.publicBase())
	c.Secure.Backend = secureBackend{c}
	c.Secure.Now = c.now // the bridge's one clock
	c.Secure.Metrics = c.metrics
	securechat.NewWeb(c.Secure, securechat.WebOptions{
		PublicURL:       c.publicBase(),
		InsecureCookies: securechat.LoopbackHTTP(c.publicBase()),
		Log:             &c.Bridge.Log,
		Location:        workflow.ClinicLocation(&c.Config.BusinessHours),
		// nil unless built with the e2eepatient tag (issue 18's spike)
		CodePagePreloads: c.codePagePreloads(),
	}).Register(router)
	// Web replicas (carebridge web) on the same PostgreSQL database: their pages hear of
	// this process's changes, and what patients do there is handed to it (securechat/handoff.go).
	secureCtx := c.Bridge.Log.With().Str("component", "secure chat").Logger().WithContext(c.Bridge.BackgroundCtx)
	if err := c.Secure.Share(secureCtx, c.databaseURI()); err != nil {
		return fmt.Errorf("failed to listen for the secure chat's signals: %w", err)
	}
	c.Secure.StartHandoffs(secureCtx)
	c.registerCommands()
	c.receipts = appservice.NewDeliveryReceipts(c.Bridge.Log.With().Str("component", "delivery receipts").Logger().WithContext(c.Bridge.BackgroundCtx),
		appservice.DeliveryReceiptDelay)
	c.Outbox = c.newOutbox()
	c.Conversations = c.newConversations()
	if err := c.Outbox.Start(c.Bridge.BackgroundCtx); err != nil {
		return err
	}
	c.Alerter.Start(c.Bridge.Log.With().Str("component", "secure alerts").Logger().WithContext(c.Bridge.BackgroundCtx))
	c.catchUp = newCatchUp(c)
	c.catchUp.atStart(ctx)
	go c.inbound.run(c.Bridge.BackgroundCtx)
	go c.syncStaffActivity(c.Bridge.BackgroundCtx)
	c.retention = securechat.StartRetention(c.Bridge.Log.With().Str("component", "retention").Logger().WithContext(c.Bridge.BackgroundCtx),
		c.DB, c.Config.SecureChat.RetentionDays)
	c.FollowUps = &conversation.FollowUps{S: c.Conversations, Keys: c.Keys, Now: c.now, StartedAt: c.startedAt,
		Linked: func(loginID string) bool {
			return c.Bridge.GetCachedUserLoginByID(networkid.UserLoginID(loginID)) != nil
		}}
	c.FollowUps.Start(c.Bridge.Log.With().Str("component", "scheduled messages").Logger().WithContext(c.Bridge.BackgroundCtx))
	c.startAuditHead(c.Bridge.BackgroundCtx)
	go func(ctx context.Context) {
		c.silenceBot(ctx)
		c.retireLegacyGhosts(ctx)
		c.Rooms.ApplyRoomPolicies(ctx)
	}(c.Bridge.Log.With().Str("component", "room policy").Logger().WithContext(c.Bridge.BackgroundCtx))
	c.startAPI(router)
	c.started.Store(true)
	c.catchUp.start(c.Bridge.BackgroundCtx)
	zerolog.Ctx(ctx).Info().Str("webhook_base", c.publicBase()).Msg("carebridge network connector started")
	return nil
}

// whenStarted answers 503 (retry shortly) until Start has finished, then hands over to h.
func (c *Connector) whenStarted(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.started.Load() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "carebridge is starting", http.StatusServiceUnavailable)
			return
		}
		h(w, r)
	}
}

// Stop is called when the bridge shuts down.
func (c *Connector) Stop() {
	if c.inbound != nil {
		c.inbound.stop()
	}
	c.catchUp.stop()
	if c.receipts != nil {
		c.receipts.Stop()
	}
	if c.Alerter != nil {
		c.Alerter.Stop()
	}
	if c.Outbox != nil {
		c.Outbox.Stop()
	}
	if c.API != nil {
		c.API.Stop()
	}
	if c.retention != nil {
		c.retention.Stop()
	}
	if c.Secure != nil {
		c.Secure.Stop()
	}
	if c.FollowUps != nil {
		c.FollowUps.Stop()
	}
	c.auditHead.Stop()
	c.stopMetrics()
	if c.Simulator != nil {
		c.Simulator.Close()
	}
}

// router is the appservice's HTTP router. bridgev2's GetRouter hides it while
// public_address is unset; carebridge mounts its routes regardless so that the bridge can
// start and say what is missing.
func (c *Connector) router() *http.ServeMux {
	if mc, ok := c.Bridge.Matrix.(*matrix.Connector); ok && mc.AS != nil {
		return mc.AS.Router
	}
	if server, ok := c.Bridge.Matrix.(bridgev2.MatrixConnectorWithServer); ok {
		return server.GetRouter()
	}
	return nil
}

// databaseURI is database.uri of the config (web replicas' signals listen on it).
func (c *Connector) databaseURI() string {
	if mc, ok := c.Bridge.Matrix.(*matrix.Connector); ok && mc.Config != nil {
		return mc.Config.Database.URI
	}
	return ""
}

// publicBase is where Twilio reaches the bridge: the override when a proxy rewrites URLs,
// otherwise appservice.public_address.
func (c *Connector) publicBase() string {
	if c.Config.Twilio.PublicURLOverride != "" {
		return strings.TrimRight(c.Config.Twilio.PublicURLOverride, "/")
	}
	if server, ok := c.Bridge.Matrix.(bridgev2.MatrixConnectorWithServer); ok {
		return strings.TrimRight(server.GetPublicAddress(), "/")
	}
	return ""
}

// GetName is called once at start-up; the network ID "sms" gives ghosts sms_<digits>,
// the bot @smsbot and the command prefix !sms.
func (c *Connector) GetName() bridgev2.BridgeName {
	return bridgev2.BridgeName{
		DisplayName:          "carebridge SMS",
		NetworkURL:           "https://www.twilio.com",
		NetworkID:            "sms",
		BeeperBridgeType:     "github.com/carebridge/carebridge",
		DefaultPort:          29340,
		DefaultCommandPrefix: "!sms",
	}
}

// GetCapabilities is called once at start-up.
func (c *Connector) GetCapabilities() *bridgev2.NetworkGeneralCapabilities {
	return &bridgev2.NetworkGeneralCapabilities{}
}

// GetBridgeInfoVersion is called when m.bridge info is sent; bump to resend it.
func (c *Connector) GetBridgeInfoVersion() (info, capabilities int) {
	return 1, 1
}

// GetConfig is called by mxmain to build and upgrade the config file.
func (c *Connector) GetConfig() (example string, data any, upgrader configupgrade.Upgrader) {
	return config.ExampleConfig, &c.Config, config.Upgrader
}

// LoadUserLogin is called for each linked clinic number when the bridge starts and when
// a number is linked.
func (c *Connector) LoadUserLogin(ctx context.Context, login *bridgev2.UserLogin) error {
	meta := login.Metadata.(*UserLoginMetadata)
	authToken, err := meta.AuthToken(c.Keys, login.ID)
	if err != nil {
		return err
	}
	if meta.needsSealing(c.Keys) {
		// Saved by a version that kept the token in clear, or sealed before a key rotation.
		if err = meta.SetAuthToken(c.Keys, login.ID, authToken); err != nil {
			return err
		} else if err = login.Save(ctx); err != nil {
			return fmt.Errorf("failed to save the sealed Twilio auth token: %w", err)
		}
		zerolog.Ctx(ctx).Info().Str("login_id", string(login.ID)).Str("key_id", meta.AuthTokenKey).
			Msg("Sealed the linked number's Twilio auth token with the current key")
	}
	provider, err := c.newProvider(meta.AccountSID, authToken)
	if err != nil {
		return err
	}
	login.Client = c.newClient(login, provider, authToken)
	return nil
}

// newClient builds the client of one linked clinic number.
func (c *Connector) newClient(login *bridgev2.UserLogin, provider sms.Provider, authToken string) *Client {
	meta := login.Metadata.(*UserLoginMetadata)
	return &Client{
		Connector: c,
		UserLogin: login,
		Provider:  outbox.Timed(provider, c.metrics),
		Media: sms.NewMediaFetcher(sms.MediaFetcherOptions{
			AccountSID:   meta.AccountSID,
			AuthToken:    authToken,
			AllowedHosts: c.mediaHosts(),
		}),
	}
}

// mediaHosts are the hosts that may receive a clinic number's credentials when the bridge
// downloads inbound media: Twilio's API host, and the configured API URL's host.
func (c *Connector) mediaHosts() []string {
	hosts := []string{sms.DefaultMediaHost}
	if u, err := url.Parse(c.Config.Twilio.APIURL); err == nil && u.Host != "" {
		hosts = append(hosts, u.Host)
	}
	if u, err := url.Parse(c.publicBase()); c.Simulator != nil && err == nil && u.Host != "" {
		// The simulator serves the photos its phone page sends from the bridge itself.
		hosts = append(hosts, u.Host)
	}
	return hosts
}

// Simulator is the simulated SMS provider of demos and tests (internal/twiliosim).
type Simulator interface {
	// Account is called when a clinic number of the simulated account is loaded.
	Account(accountSID, authToken string) sms.Provider
	// Handler serves the simulated phone page.
	Handler() http.Handler
	// Close stops its status callbacks.
	Close()
}

// simulatorPath is where the simulated phone page is served.
const simulatorPath = "/_carebridge/simulator"

func (c *Connector) newProvider(accountSID, authToken string) (sms.Provider, error) {
	if c.Simulator != nil {
		return c.Simulator.Account(accountSID, authToken), nil
	}
	return sms.NewTwilio(sms.TwilioOptions{
		AccountSID: accountSID,
		AuthToken:  authToken,
		APIURL:     c.Config.Twilio.APIURL,
		Timeout:    c.Config.Twilio.RequestTimeout,
	})
}
