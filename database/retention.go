package database

import (
	"context"
	"errors"
	"fmt"
	"time"
)

const (
	// The secure chat's copy, per conversation. A patient's message that has not reached the
	// room yet is kept, however old: the room is the record of care and it is still owed there.
	dueSecureConversationsQuery = `
		SELECT DISTINCT login_id, portal_id FROM secure_message
		WHERE created_at<$1 AND (from_patient=false OR event_id<>'')
	`
	purgeSecureMessagesQuery = `
		DELETE FROM secure_message WHERE id IN (
			SELECT id FROM secure_message
			WHERE login_id=$1 AND portal_id=$2 AND created_at<$3 AND (from_patient=false OR event_id<>'')
			ORDER BY id LIMIT $4
		)
	`
	// A pending receipt is never purged: it is still owed to the room.
	purgeReceiptsQuery = `
		DELETE FROM inbound_receipt WHERE message_sid IN (
			SELECT message_sid FROM inbound_receipt WHERE state='delivered' AND received_at<$1 LIMIT $2
		)
	`
	// A link stays while a session opened with it is alive, whatever its expiry says.
	purgeLinksQuery = `
		DELETE FROM secure_link WHERE token_hash IN (
			SELECT token_hash FROM secure_link l
			WHERE (l.expires_at<$1 OR (l.revoked_at>0 AND l.revoked_at<$1)) AND NOT EXISTS (
				SELECT 1 FROM secure_session s WHERE s.link_hash=l.token_hash AND s.ended_at=0 AND s.expires_at>$2
			)
			LIMIT $3
		)
	`
	// secure_code has no primary key: the outer condition keeps a live code that happens to
	// share its hash pair with a due one.
	purgeCodesQuery = `
		DELETE FROM secure_code WHERE expires_at<$1 AND (link_hash, code_hash) IN (
			SELECT link_hash, code_hash FROM secure_code WHERE expires_at<$1 LIMIT $2
		)
	`
	purgeSessionsQuery = `
		DELETE FROM secure_session WHERE session_hash IN (
			SELECT session_hash FROM secure_session
			WHERE expires_at<$1 OR (ended_at>0 AND ended_at<$1) LIMIT $2
		)
	`
	purgeMediaQuery = `
		DELETE FROM outbound_media WHERE token_hash IN (
			SELECT token_hash FROM outbound_media WHERE expires_at<$1 LIMIT $2
		)
	`
	// Integration API: answers kept for Idempotency-Key, delivered events, and the text of
	// FHIR Communications (the record stays: its id and state).
	purgeIdempotencyQuery = `
		DELETE FROM api_idempotency WHERE (integration, idem_key) IN (
			SELECT integration, idem_key FROM api_idempotency WHERE created_at<$1 LIMIT $2
		)
	`
	purgeAPIEventsQuery = `
		DELETE FROM api_event WHERE id IN (
			SELECT id FROM api_event WHERE delivered_at<>0 AND delivered_at<$1 LIMIT $2
		)
	`
	// A finished text holds no body; its row goes with the inbound receipts' age.
	purgeOutboxQuery = `
		DELETE FROM outbox_message WHERE id IN (
			SELECT id FROM outbox_message WHERE state IN ('sent', 'failed') AND updated_at<$1 LIMIT $2
		)
	`
	purgeAPIResourcesQuery = `
		UPDATE api_message SET key_id='', resource=NULL WHERE id IN (
			SELECT id FROM api_message WHERE resource IS NOT NULL AND created_at<$1 LIMIT $2
		)
	`
)

const (
	// DefaultPurgeBatch bounds each delete statement and its transaction, so that a large
	// purge never holds the database's write lock for long.
	DefaultPurgeBatch = 500
	// ReceiptRetention is how long a delivered inbound receipt stays for de-duplication.
	ReceiptRetention = 7 * 24 * time.Hour
	// ExpiredRetention is how long expired links, codes, sessions and media URLs stay.
	ExpiredRetention = 24 * time.Hour
)

// RetentionPolicy says how long each kind of data is kept.
type RetentionPolicy struct {
	// SecureMessages is secure_chat.retention_days: the secure chat's copy of messages and
	// attachments, counted from when each was sent.
	SecureMessages time.Duration
	// Receipts is for delivered inbound receipts, counted from when they arrived.
	Receipts time.Duration
	// Expired is for links (from expiry or revocation), codes, sessions (from expiry or
	// end) and media URLs (from expiry).
	Expired time.Duration
	// BatchSize is the most rows one statement deletes; 0 means DefaultPurgeBatch.
	BatchSize int
}

// NewRetentionPolicy is the policy for a secure_chat.retention_days setting.
func NewRetentionPolicy(retentionDays int) RetentionPolicy {
	return RetentionPolicy{
		SecureMessages: time.Duration(retentionDays) * 24 * time.Hour,
		Receipts:       ReceiptRetention,
		Expired:        ExpiredRetention,
	}
}

func (p RetentionPolicy) validate() error {
	// A zero period would purge everything up to now, live links and unread messages included.
	if p.SecureMessages <= 0 || p.Receipts <= 0 || p.Expired <= 0 || p.BatchSize < 0 {
		return fmt.Errorf("retention periods must be positive (secure messages %s, receipts %s, expired %s)",
			p.SecureMessages, p.Receipts, p.Expired)
	}
	return nil
}

// PurgeCounts is how many rows a purge deleted from each table.
type PurgeCounts struct {
	SecureMessages int64
	// Conversations is how many conversations lost secure messages.
	Conversations int
	Receipts      int64
	Links         int64
	Codes         int64
	Sessions      int64
	Media         int64
	// The integration API's kept answers, delivered events and FHIR texts.
	APIKeys      int64
	APIEvents    int64
	APIResources int64
	// Finished texts of the outbox (they hold no body).
	Outbox int64
}

// Total is the number of rows deleted.
func (pc PurgeCounts) Total() int64 {
	return pc.SecureMessages + pc.Receipts + pc.Links + pc.Codes + pc.Sessions + pc.Media + pc.APIKeys + pc.APIEvents + pc.APIResources + pc.Outbox
}

// Purge deletes what the policy no longer keeps as of now. Rows go in batches of at most
// BatchSize, each batch in a transaction with its audit row ("data purged", no bodies, no
// phone numbers): one per conversation for secure messages, one per table otherwise. A run
// whose due rows fit in one batch thus writes one audit row per table (per conversation),
// and a backlog writes one per batch, the counts adding up to what was deleted. A failing
// table does not stop the others; the errors are returned together with the counts.
func (db *Database) Purge(ctx context.Context, now time.Time, policy RetentionPolicy) (PurgeCounts, error) {
	var counts PurgeCounts
	if err := policy.validate(); err != nil {
		return counts, err
	}
	if policy.BatchSize == 0 {
		policy.BatchSize = DefaultPurgeBatch
	}
	var errs []error
	var err error
	counts.SecureMessages, counts.Conversations, err = db.purgeSecureMessages(ctx, now.Add(-policy.SecureMessages), policy)
	if err != nil {
		errs = append(errs, fmt.Errorf("failed to purge secure messages: %w", err))
	}
	expired, grace := now.Add(-policy.Expired).UnixMilli(), describeAge(policy.Expired)
	steps := []struct {
		table  string
		count  *int64
		query  string
		args   []any
		detail string
	}{
		{"inbound_receipt", &counts.Receipts, purgeReceiptsQuery, []any{now.Add(-policy.Receipts).UnixMilli()},
			"delivered and received more than " + describeAge(policy.Receipts) + " ago"},
		{"secure_session", &counts.Sessions, purgeSessionsQuery, []any{expired},
			"expired or ended more than " + grace + " ago"},
		{"secure_link", &counts.Links, purgeLinksQuery, []any{expired, now.UnixMilli()},
			"expired or revoked more than " + grace + " ago"},
		{"secure_code", &counts.Codes, purgeCodesQuery, []any{expired},
			"expired more than " + grace + " ago"},
		{"outbound_media", &counts.Media, purgeMediaQuery, []any{expired},
			"expired more than " + grace + " ago"},
		{"api_idempotency", &counts.APIKeys, purgeIdempotencyQuery, []any{expired},
			"kept for Idempotency-Key more than " + grace + " ago"},
		{"api_event", &counts.APIEvents, purgeAPIEventsQuery, []any{now.Add(-policy.Receipts).UnixMilli()},
			"delivered more than " + describeAge(policy.Receipts) + " ago"},
		{"outbox_message", &counts.Outbox, purgeOutboxQuery, []any{now.Add(-policy.Receipts).UnixMilli()},
			"texts sent or given up more than " + describeAge(policy.Receipts) + " ago"},
		{"api_message", &counts.APIResources, purgeAPIResourcesQuery, []any{now.Add(-policy.SecureMessages).UnixMilli()},
			"FHIR Communication texts sent more than " + describeAge(policy.SecureMessages) + " ago"},
	}
	for _, step := range steps {
		*step.count, err = db.purgeBatches(ctx, policy.BatchSize, step.query, step.args, func(n int64) *AuditEntry {
			return &AuditEntry{Actor: SystemActor, Event: EventDataPurged, Outcome: OutcomeOK,
				Detail: step.table + ": " + countRows(n) + " " + step.detail}
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to purge %s: %w", step.table, err))
		}
	}
	return counts, errors.Join(errs...)
}

// purgeSecureMessages deletes the secure chat's copies sent before cutoff, conversation by
// conversation, so that each audit row says whose messages went.
func (db *Database) purgeSecureMessages(ctx context.Context, cutoff time.Time, policy RetentionPolicy) (total int64, conversations int, err error) {
	type conversationKey struct{ loginID, portalID string }
	rows, err := db.Query(ctx, dueSecureConversationsQuery, cutoff.UnixMilli())
	if err != nil {
		return 0, 0, err
	}
	var due []conversationKey
	for rows.Next() {
		var key conversationKey
		if err = rows.Scan(&key.loginID, &key.portalID); err != nil {
			_ = rows.Close()
			return 0, 0, err
		}
		due = append(due, key)
	}
	if err = errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, 0, err
	}
	detail := "older than " + describeAge(policy.SecureMessages)
	for _, key := range due {
		n, err := db.purgeBatches(ctx, policy.BatchSize, purgeSecureMessagesQuery,
			[]any{key.loginID, key.portalID, cutoff.UnixMilli()}, func(n int64) *AuditEntry {
				return &AuditEntry{Actor: SystemActor, LoginID: key.loginID, PortalID: key.portalID,
					Event: EventDataPurged, Outcome: OutcomeOK, Detail: "secure_message: " + countRows(n) + " " + detail}
			})
		total += n
		if n > 0 {
			conversations++
		}
		if err != nil {
			return total, conversations, err
		}
	}
	return total, conversations, nil
}

// purgeBatches runs a delete statement whose last parameter is its row limit until it
// deletes fewer rows than the limit. Each batch commits with its audit row, or not at all.
func (db *Database) purgeBatches(ctx context.Context, batch int, query string, args []any, audit func(n int64) *AuditEntry) (total int64, err error) {
	for {
		if err = ctx.Err(); err != nil {
			return total, err
		}
		var n int64
		err = db.DoTxn(ctx, nil, func(ctx context.Context) error {
			res, err := db.Exec(ctx, query, append(args[:len(args):len(args)], batch)...)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil || n == 0 {
				return err
			}
			return db.Audit.Append(ctx, audit(n))
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}

// countRows writes "1 row" or "12 rows".
func countRows(n int64) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

// describeAge writes a retention period for the audit log: "30 days", "1 day", or "36h0m0s".
func describeAge(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	default:
		return d.String()
	}
}
