// Package database holds every SQL statement carebridge runs, one file per table, on
// SQLite and PostgreSQL through dbutil, with carebridge's own version table beside bridgev2's.
package database

import (
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/database/upgrades"
)

// VersionTable is the table dbutil keeps carebridge's schema version in.
const VersionTable = "carebridge_version"

// Database is carebridge's view of the bridge database.
type Database struct {
	*dbutil.Database
	Conversation *ConversationQuery
	Receipt      *ReceiptQuery
	Outbound     *OutboundQuery
	Outbox       *OutboxQuery
	Media        *OutboundMediaQuery
	Link         *SecureLinkQuery
	Code         *SecureCodeQuery
	Session      *SecureSessionQuery
	Secure       *SecureMessageQuery
	Audit        *AuditQuery
	TwilioSync   *TwilioSyncQuery
	ReadPending  *SecureReadPendingQuery

	ghostIDs *ghostIDCache
}

// New wraps the bridge's database; call Upgrade before use.
func New(db *dbutil.Database, log zerolog.Logger) *Database {
	db = db.Child(VersionTable, upgrades.Table, dbutil.ZeroLogger(log))
	return &Database{
		Database: db,
		ghostIDs: &ghostIDCache{},
		Conversation: &ConversationQuery{dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*Conversation]) *Conversation {
			return &Conversation{}
		})},
		Receipt: &ReceiptQuery{dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*Receipt]) *Receipt {
			return &Receipt{}
		})},
		Outbound: &OutboundQuery{dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*Outbound]) *Outbound {
			return &Outbound{}
		})},
		Outbox: &OutboxQuery{dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*OutboxMessage]) *OutboxMessage {
			return &OutboxMessage{}
		})},
		Media: &OutboundMediaQuery{dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*OutboundMedia]) *OutboundMedia {
			return &OutboundMedia{}
		})},
		Link: &SecureLinkQuery{dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*SecureLink]) *SecureLink {
			return &SecureLink{}
		})},
		Code: &SecureCodeQuery{dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*SecureCode]) *SecureCode {
			return &SecureCode{}
		})},
		Session: &SecureSessionQuery{dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*SecureSession]) *SecureSession {
			return &SecureSession{}
		})},
		Secure: &SecureMessageQuery{dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*SecureMessage]) *SecureMessage {
			return &SecureMessage{}
		})},
		Audit: &AuditQuery{QueryHelper: dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*AuditEntry]) *AuditEntry {
			return &AuditEntry{}
		})},
		TwilioSync: &TwilioSyncQuery{db: db},
		ReadPending: &SecureReadPendingQuery{dbutil.MakeQueryHelper(db, func(qh *dbutil.QueryHelper[*SecureReadPending]) *SecureReadPending {
			return &SecureReadPending{}
		})},
	}
}
