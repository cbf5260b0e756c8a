package bridge

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/sms"
)

// Twilio does not retry a failed SMS webhook unless told to, and cannot reach a bridge
// that is down: the texts are in its message log all the same. The catch-up reads the
// log of each clinic number from where the last complete read began, stores the texts no
// webhook stored as receipts (the inbound queue delivers them, in Twilio's order, once),
// and looks up the texts the bridge sent whose final status never arrived. It runs at
// start, after a gap the bridge sees (a webhook it failed, a number linked again) and
// every inbound.catch_up_interval, for gaps it cannot see.

const (
	// catchUpMargin is how far before the mark the log is read again: Twilio's clock and
	// the bridge's differ, and Twilio may count whole seconds.
	catchUpMargin = 2 * time.Minute
	// catchUpAtStart bounds the catch-up that runs before the inbound queue starts; what
	// it did not finish the catch-up loop does right after.
	catchUpAtStart = 20 * time.Second
	// catchUpDebounce gathers the gaps seen close together into one read.
	catchUpDebounce = 2 * time.Second
	// catchUpRetry is when a catch-up that failed (Twilio unreachable) is tried again.
	catchUpRetry = 30 * time.Second
	// statusOverdue is how long after a text was sent its final status may take before
	// the bridge asks Twilio; statusWindow and statusBatch bound what is asked.
	statusOverdue = 2 * time.Minute
	statusWindow  = 3 * 24 * time.Hour
	statusBatch   = 200
)

// catchUpWindow bounds how far back the log is read: a delivered receipt is kept
// database.ReceiptRetention for de-duplication, and an older text would be stored twice.
var catchUpWindow = database.ReceiptRetention - 24*time.Hour

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

// catchUpInbound stores the texts of the number's message log that no webhook stored,
// oldest first, then moves the number's mark to when the read began.
func (cu *catchUp) catchUpInbound(ctx context.Context, login *bridgev2.UserLogin) error {
	c := cu.c
	client, ok := login.Client.(*Client)
	if !ok {
		return nil
	}
	loginID := string(login.ID)
	log := zerolog.Ctx(ctx).With().Str("login_id", loginID).Logger()
	began := time.Now()
	mark, ok, err := c.DB.TwilioSync.SyncedUntil(ctx, loginID)
	if err != nil {
		return err
	} else if !ok {
		// A number linked by an earlier version: from its newest stored text, if any.
		if mark, err = c.DB.Receipt.LastReceivedAt(ctx, loginID); err != nil {
			return err
		} else if mark.IsZero() {
			mark = began
		}
	}
	since := mark.Add(-catchUpMargin)
	if oldest := began.Add(-catchUpWindow); since.Before(oldest) {
		log.Warn().Time("mark", mark).Msg("Twilio's message log was last read too long ago: texts older than the receipts kept are not looked for")
		since = oldest
	}
	logged, err := client.Provider.ListInbound(ctx, client.meta().Phone, since)
	if err != nil {
		return err
	}
	// Each missed text is stored just after the text before it in the log, so that the
	// queue keeps Twilio's order within a conversation (Twilio's dates have whole seconds).
	var previous time.Time
	found := 0
	for _, m := range logged {
		if !m.Received() {
			continue // an MMS still "receiving": a later read finds it received
		}
		stored, err := c.DB.Receipt.Get(ctx, m.SID)
		if err != nil {
			return err
		} else if stored != nil {
			previous = stored.ReceivedAt
			continue
		}
		at := m.DateSent
		if !at.After(previous) {
			at = previous.Add(time.Millisecond)
		}
		status, err := c.storeInbound(ctx, login, m.WebhookForm(), at, metrics.InboundCaughtUp)
		if err != nil && status >= 500 {
			return err
		} else if err != nil {
			log.Debug().Str("message_sid", m.SID).Msg("Text in Twilio's message log is not for a conversation; skipped")
			continue
		}
		previous = at
		found++
	}
	if found > 0 {
		log.Info().Int("count", found).Time("since", since).Msg("Stored texts from Twilio's message log that no webhook had stored")
	}
	return c.DB.TwilioSync.Advance(ctx, loginID, began)
}

// catchUpStatuses asks Twilio for the status of the number's texts whose final status
// never arrived, and applies each that advances as its status callback would have.
func (cu *catchUp) catchUpStatuses(ctx context.Context, login *bridgev2.UserLogin) error {
	c := cu.c
	client, ok := login.Client.(*Client)
	if !ok {
		return nil
	}
	now := time.Now()
	// A text sent before this process started had its callbacks go to a process that is gone.
	before := now.Add(-statusOverdue)
	if c.startedAt.After(before) {
		before = c.startedAt
	}
	texts, err := c.DB.Outbound.Unfinished(ctx, string(login.ID), now.Add(-statusWindow), before, statusBatch)
	if err != nil {
		return err
	}
	updated := 0
	for _, out := range texts {
		m, err := client.Provider.FetchMessage(ctx, out.MessageSID)
		if errors.Is(err, sms.ErrMessageNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if !sms.StatusSupersedes(m.Status, out.Status) {
			continue
		}
		cb := &sms.StatusCallback{MessageSID: m.SID, AccountSID: m.AccountSID, From: m.From, To: m.To, Status: m.Status, ErrorCode: m.ErrorCode}
		log := zerolog.Ctx(ctx).With().Str("message_sid", m.SID).Str("message_status", m.Status).Logger()
		if err = c.applyStatus(log.WithContext(ctx), login, cb); err != nil {
			return err
		}
		updated++
	}
	if updated > 0 {
		zerolog.Ctx(ctx).Info().Str("login_id", string(login.ID)).Int("count", updated).
			Msg("Applied statuses from Twilio whose callbacks never arrived")
	}
	return nil
}
