package workflow

import "errors"

// TestClockEnv names a file holding a duration (e.g. "36h") added to the bridge's clock
// (business hours, scheduled messages, response times, alerts), so that integration
// tests move time without waiting. Only a binary built with the testclock tag reads it
// (processclock_testclock.go); any other refuses to start when it is set (ProcessClock), so
// that nobody believes time moved when it did not.
const TestClockEnv = "CAREBRIDGE_TEST_CLOCK_FILE"

// ErrTestClockNotBuilt is ProcessClock's refusal in a build without the testclock tag when
// TestClockEnv is set.
var ErrTestClockNotBuilt = errors.New(TestClockEnv + " is set, but this carebridge binary was built without the testclock tag: " +
	"its clock is real time and would not move. Unset it (a production bridge never sets it), or build with -tags testclock for tests")
