package bridge

import (
	"context"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/id"
)

// The clinic workflow (teams, assignment, urgency, after-hours replies, templates,
// scheduled follow-ups, response times) hangs off three hooks: a patient's text reached
// the room, a staff reply reached the patient, and the commands below.

// workflowHandlers are the workflow's room commands; each workflow file adds its own.
var workflowHandlers []commands.CommandHandler

// TestClockEnv names a file holding a duration (e.g. "36h") added to the bridge's clock
// for the workflow (business hours, scheduled messages, response times). Tests use it to
// move time without waiting; a production bridge never sets it.
const TestClockEnv = "CAREBRIDGE_TEST_CLOCK_FILE"

type testClock struct {
	path string
	mu   sync.Mutex
	seen time.Time // the file's modification time when it was last read
	off  time.Duration
}

var clock = func() *testClock {
	if path := os.Getenv(TestClockEnv); path != "" {
		return &testClock{path: path}
	}
	return nil
}()

// offset re-reads the file whenever it changed, so a test's move takes effect at once.
func (tc *testClock) offset() time.Duration {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	info, err := os.Stat(tc.path)
	if err != nil || info.ModTime().Equal(tc.seen) {
		return tc.off
	}
	if raw, err := os.ReadFile(tc.path); err == nil {
		if d, err := time.ParseDuration(strings.TrimSpace(string(raw))); err == nil {
			tc.off, tc.seen = d, info.ModTime()
		}
	}
	return tc.off
}

// now is the workflow's clock: real time, moved by the test clock when one is set.
func (c *Connector) now() time.Time {
	if clock != nil {
		return time.Now().Add(clock.offset())
	}
	return time.Now()
}

// warnTestClock says loudly that the clock is not real.
func warnTestClock(log *zerolog.Logger) {
	if clock != nil {
		log.Warn().Str("env", TestClockEnv).Msg("The workflow clock is moved by a test clock file: never set this in production")
	}
}

// onPatientText runs the workflow rules for a patient's text (SMS or secure chat) that
// has just been put into the room. Keywords (STOP, HELP…) do not come here.
func (c *Connector) onPatientText(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, body string) {
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read the conversation for the workflow")
		return
	}
	c.reopenIfClosed(ctx, portal, conv)
	c.checkEmergency(ctx, login, portal, conv, body)
	c.checkAfterHours(ctx, login, portal, conv)
	c.mentionAssignee(ctx, portal, conv)
}

// onStaffReply runs after a staff message reached the patient (by SMS or the secure chat).
func (c *Connector) onStaffReply(ctx context.Context, portal *bridgev2.Portal, sender id.UserID) {
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read the conversation for the workflow")
		return
	}
	c.recordStaffReply(ctx, portal, conv, sender)
}
