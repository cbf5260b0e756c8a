// Package bridge is carebridge's bridgev2 network connector: where the Matrix side,
// Twilio and the database meet, and nothing that could live below it. One file per
// concern, as in mautrix bridges: connector.go (lifecycle), login.go (linking a clinic
// number), client.go (one linked number), handletwilio.go (webhooks in), inbound.go
// (stored texts delivered into Matrix, retried), portalqueue.go (the per-room lanes of
// the homeserver's transactions), handlematrix.go, handlemedia.go and handlemms.go
// (staff messages out), messagestatus.go, chatinfo.go, capabilities.go, id.go,
// dbmeta.go, commands.go (every command, one list). The rest are adapters that give the
// packages above what they need of bridgev2: conversation.go and rooms.go (package
// conversation and appservice), securemode.go (securechat), outbox.go, api.go
// (integration), staffactivity.go (read receipts and typing to the patient's page).
package bridge
