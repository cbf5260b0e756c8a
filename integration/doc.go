// Package integration is carebridge's API for EHR and practice-management systems: REST
// under /_carebridge/api/v1/ (rest.go), FHIR R4 Communication under /_carebridge/fhir/
// (fhir.go), and signed event webhooks kept until delivered (events.go). Each system has
// its own bearer token, scopes and rate limit (server.go); every call is audited, and
// POSTs honour Idempotency-Key (idempotency.go). The bridge acts through Backend.
package integration
