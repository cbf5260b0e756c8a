package bridge

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/sms"
)

// Twilio does not retry a failed SMS webhook unless told to, and cannot reach a bridge
// that is down: the texts are in its message log all the same. The catch-up reads the
// log of each clinic number from where the last complete read began, stores the texts no
// webhook stored as receipts (the inbound queue delivers them, in Twilio's order, once),
// and looks up the texts the bridge sent whose final status never arrived; the outbox
// talks to Twilio (outbox/catchup.go), this file decides when. It runs at start, after a
// gap the bridge sees (a webhook it failed, a number linked again) and every
// inbound.catch_up_interval, for gaps it cannot see.

const (
	// catchUpAtStart bounds the catch-up that runs before the inbound queue starts; what
	// it did not finish the catch-up loop does right after.
	catchUpAtStart = 20 * time.Second
	// catchUpDebounce gathers the gaps seen close together into one read.
	catchUpDebounce = 2 * time.Second
	// catchUpRetry is when a catch-up that failed (Twilio unreachable) is tried again.
	catchUpRetry = 30 * time.Second
)

// catchUp runs the catch-ups; request and requestAll may be called from anywhere.
type catchUp struct {
	c      *Connector
	wakeCh chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	all      bool // the inbound log of every clinic number
	inbound  map[networkid.UserLoginID]bool
	statuses map[networkid.UserLoginID]bool
}

func newCatchUp(c *Connector) *catchUp {
	return &catchUp{
		c: c, wakeCh: make(chan struct{}, 1), done: make(chan struct{}),
		inbound: map[networkid.UserLoginID]bool{}, statuses: map[networkid.UserLoginID]bool{},
	}
}

// request asks for a read of the clinic number's inbound log and, with statuses, of the
// statuses still owed to its texts.
func (cu *catchUp) request(loginID networkid.UserLoginID, statuses bool) {
	if cu == nil {
		return
	}
	cu.requeue(loginID, statuses)
	cu.wake()
}

// requeue is request without waking the loop: a failed catch-up waits for its retry.
func (cu *catchUp) requeue(loginID networkid.UserLoginID, statuses bool) {
	cu.mu.Lock()
	cu.inbound[loginID] = true
	if statuses {
		cu.statuses[loginID] = true
	}
	cu.mu.Unlock()
}

// requestAll asks for a read of every clinic number's inbound log.
func (cu *catchUp) requestAll() {
	if cu == nil {
		return
	}
	cu.mu.Lock()
	cu.all = true
	cu.mu.Unlock()
	cu.wake()
}

func (cu *catchUp) wake() {
	select {
	case cu.wakeCh <- struct{}{}:
	default:
	}
}

// atStart runs before the inbound queue starts and before webhooks are accepted, so that
// the texts sent while the bridge was down take their place before any newer one of
// their conversation. It reads every linked number's inbound log (the statuses wait for
// the loop), for at most catchUpAtStart.
func (cu *catchUp) atStart(ctx context.Context) {
	log := cu.c.Bridge.Log.With().Str("component", "catch-up").Logger()
	ctx, cancel := context.WithTimeout(log.WithContext(ctx), catchUpAtStart)
	defer cancel()
	logins, err := cu.linkedLogins(ctx)
	if err != nil {
		log.Err(err).Msg("Failed to load the clinic numbers for the catch-up; it runs once the bridge has started")
	}
	for _, login := range logins {
		if err = cu.catchUpInbound(ctx, login); err != nil {
			log.Err(err).Str("login_id", string(login.ID)).
				Msg("Failed to read Twilio's message log at start; it is read again once the bridge has started")
		}
		cu.request(login.ID, true)
	}
	// Webhooks refused while the bridge starts (it answers 503) are in the log too.
	cu.requestAll()
}

// linkedLogins loads every linked clinic number, which bridgev2 does only after Start.
func (cu *catchUp) linkedLogins(ctx context.Context) ([]*bridgev2.UserLogin, error) {
	userIDs, err := cu.c.Bridge.DB.UserLogin.GetAllUserIDsWithLogins(ctx)
	if err != nil {
		return nil, err
	}
	var logins []*bridgev2.UserLogin
	for _, userID := range userIDs {
		user, err := cu.c.Bridge.GetExistingUserByMXID(ctx, userID)
		if err != nil {
			return logins, err
		} else if user != nil {
			logins = append(logins, user.GetUserLogins()...)
		}
	}
	return logins, nil
}

// start runs the catch-up loop until stop.
func (cu *catchUp) start(ctx context.Context) {
	ctx, cu.cancel = context.WithCancel(ctx)
	log := cu.c.Bridge.Log.With().Str("component", "catch-up").Logger()
	go cu.run(log.WithContext(ctx))
}

func (cu *catchUp) stop() {
	if cu != nil && cu.cancel != nil {
		cu.cancel()
		<-cu.done
	}
}

func (cu *catchUp) run(ctx context.Context) {
	defer close(cu.done)
	tick := time.NewTicker(cu.c.Config.Inbound.CatchUpInterval)
	defer tick.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			cu.requestAll()
		case <-cu.wakeCh:
		case <-retry:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(catchUpDebounce):
		}
		retry = nil
		if !cu.runPending(ctx) {
			retry = time.After(catchUpRetry)
		}
	}
}

// runPending runs the requested catch-ups; what fails stays requested. It reports
// whether all succeeded.
func (cu *catchUp) runPending(ctx context.Context) bool {
	cu.mu.Lock()
	all, inbound, statuses := cu.all, cu.inbound, cu.statuses
	cu.all, cu.inbound, cu.statuses = false, map[networkid.UserLoginID]bool{}, map[networkid.UserLoginID]bool{}
	cu.mu.Unlock()
	if all {
		for _, login := range cu.c.Bridge.GetAllCachedUserLogins() {
			inbound[login.ID] = true
		}
	}
	ok := true
	for loginID := range inbound {
		login := cu.c.Bridge.GetCachedUserLoginByID(loginID)
		if login == nil {
			continue // unlinked meanwhile
		}
		if err := cu.catchUpInbound(ctx, login); err != nil && ctx.Err() == nil {
			zerolog.Ctx(ctx).Err(err).Str("login_id", string(loginID)).Msg("Failed to read Twilio's message log; will retry")
			cu.requeue(loginID, false)
			ok = false
		}
	}
	for loginID := range statuses {
		login := cu.c.Bridge.GetCachedUserLoginByID(loginID)
		if login == nil {
			continue
		}
		if err := cu.catchUpStatuses(ctx, login); err != nil && ctx.Err() == nil {
			zerolog.Ctx(ctx).Err(err).Str("login_id", string(loginID)).Msg("Failed to look up the status of texts at Twilio; will retry")
			cu.requeue(loginID, true)
			ok = false
		}
	}
	return ok
}

// catchUpInbound stores the texts of the number's message log that no webhook stored
// (outbox.CatchUpInbound reads the log), as the webhook would have.
func (cu *catchUp) catchUpInbound(ctx context.Context, login *bridgev2.UserLogin) error {
	c := cu.c
	client, ok := login.Client.(*Client)
	if !ok {
		return nil
	}
	return c.Outbox.CatchUpInbound(ctx, string(login.ID), client.meta().Phone,
		func(ctx context.Context, m *sms.LoggedMessage, at time.Time) (bool, error) {
			status, err := c.storeInbound(ctx, login, m.WebhookForm(), at, metrics.InboundCaughtUp)
			if err != nil && status >= http.StatusInternalServerError {
				return false, err
			}
			return err == nil, nil
		})
}

// catchUpStatuses applies the statuses Twilio holds for the number's texts whose final
// status never arrived (outbox.CatchUpStatuses asks for them) as their callbacks would have.
func (cu *catchUp) catchUpStatuses(ctx context.Context, login *bridgev2.UserLogin) error {
	c := cu.c
	if _, ok := login.Client.(*Client); !ok {
		return nil
	}
	return c.Outbox.CatchUpStatuses(ctx, string(login.ID), c.startedAt, func(ctx context.Context, cb *sms.StatusCallback) error {
		return c.applyStatus(ctx, login, cb)
	})
}
