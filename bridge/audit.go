package bridge

import (
	"context"

	cbdb "github.com/carebridge/carebridge/database"
)

// audited runs a change to carebridge's database and its audit event in one transaction:
// when the event cannot be written, the change does not happen either. change may be nil
// for an event that goes with no change of ours.
func (c *Connector) audited(ctx context.Context, entry *cbdb.AuditEntry, change func(ctx context.Context) error) error {
	return c.DB.Audited(ctx, entry, change)
}

// convAudit is an audit entry about a conversation.
func convAudit(conv *cbdb.Conversation, actor cbdb.AuditActor, event cbdb.AuditEvent, outcome cbdb.AuditOutcome, detail string) *cbdb.AuditEntry {
	return &cbdb.AuditEntry{Actor: actor, LoginID: conv.LoginID, PortalID: conv.PortalID, Event: event, Outcome: outcome, Detail: detail}
}
