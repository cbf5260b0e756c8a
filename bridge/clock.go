package bridge

// TestClockEnv names a file holding a duration (e.g. "36h") added to the bridge's clock
// (business hours, scheduled messages, response times, alerts), so that integration
// tests move time without waiting. Only a binary built with the testclock tag reads it
// (clock_testclock.go); any other refuses to start when it is set (ProcessClock), so that
// nobody believes time moved when it did not.
const TestClockEnv = "CAREBRIDGE_TEST_CLOCK_FILE"
