//go:build e2eepatient

// Package e2ee is the end-to-end-encryption-to-the-patient spike (issue 18) so far: the
// allowlist Proxy from a patient's browser, a Matrix device of its own, to the homeserver, and
// the Inbox that files what the homeserver pushes to the appservice for that device and hands
// it to the page's long poll. It is built only with the e2eepatient tag and changes nothing in
// production; docs/e2ee-to-the-patient.md says what each allows, refuses and leaves to do.
package e2ee
