// Package bridge is carebridge's bridgev2 network connector: the one place where the
// Matrix side, Twilio and the database meet. One file per concern, as in mautrix bridges:
// connector.go (lifecycle), login.go (linking a clinic number), client.go (one linked
// number), handletwilio.go (webhooks in), inbound.go (delivery into Matrix, retried),
// handlematrix.go (staff messages out), chatinfo.go, capabilities.go, id.go, dbmeta.go;
// api.go does for the integration API (package integration) what staff would do.
package bridge
