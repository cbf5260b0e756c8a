//go:build e2eepatient

// Package e2ee is the first step of the end-to-end-encryption-to-the-patient spike (issue 18):
// the allowlist proxy between a patient's browser, which is a Matrix device of its own, and the
// homeserver. It is built only with the e2eepatient tag and changes nothing in production;
// docs/e2ee-to-the-patient.md says what it allows, what it refuses and why.
package e2ee
