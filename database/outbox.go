package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	outboxColumns = `id, login_id, portal_id, kind, from_phone, to_phone, key_id, sealed, event_id, sender_mxid,
		state, attempts, next_attempt_at, message_sid, error_code, last_error, created_at, updated_at`
	dueOutboxColumns = `id, login_id, portal_id, kind, from_phone, to_phone, '', NULL, event_id, sender_mxid,
		state, attempts, next_attempt_at, message_sid, error_code, last_error, created_at, updated_at`
	insertOutboxQuery = `INSERT INTO outbox_message (login_id, portal_id, kind, from_phone, to_phone, key_id, sealed,
		event_id, sender_mxid, state, next_attempt_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $10, $10) ON CONFLICT DO NOTHING RETURNING id`
	// The text a staff message was queued as (a staff message's event is queued once).
	getOutboxByEventQuery = `SELECT ` + outboxColumns + ` FROM outbox_message
		WHERE login_id=$1 AND portal_id=$2 AND event_id=$3 AND kind='staff_reply'`
	getOutboxQuery = `SELECT ` + outboxColumns + ` FROM outbox_message WHERE id=$1`
	// The head of each conversation: its oldest unfinished text, when that one is due. A
	// text waiting for a retry holds back the rest of its conversation, so they leave in order.
	// Without the sealed body (NULL in its place): most heads read are not taken (their
	// conversation is busy), and Claim reads the body of the one that is.
	getDueOutboxQuery = `SELECT ` + dueOutboxColumns + ` FROM outbox_message o
		WHERE o.state='pending' AND o.next_attempt_at<=$1
		  AND NOT EXISTS (SELECT 1 FROM outbox_message p WHERE p.login_id=o.login_id AND p.portal_id=o.portal_id
		                  AND p.id<o.id AND p.state IN ('pending', 'sending'))
		  %s
		ORDER BY o.id LIMIT $2`
	// When the next head of a conversation is due (a conversation whose head is being
	// sent has none).
	nextDueOutboxQuery = `SELECT MIN(o.next_attempt_at) FROM outbox_message o WHERE o.state='pending'
		  AND NOT EXISTS (SELECT 1 FROM outbox_message p WHERE p.login_id=o.login_id AND p.portal_id=o.portal_id
		                  AND p.id<o.id AND p.state IN ('pending', 'sending'))`
	claimOutboxQuery = `UPDATE outbox_message SET state='sending', attempts=attempts+1, updated_at=$2
		WHERE id=$1 AND state='pending' RETURNING key_id, sealed, attempts`
	sentOutboxQuery = `UPDATE outbox_message SET state='sent', message_sid=$2, sealed=NULL, last_error='', updated_at=$3
		WHERE id=$1`
	retryOutboxQuery = `UPDATE outbox_message SET state='pending', next_attempt_at=$2, error_code=$3, last_error=$4, updated_at=$5
		WHERE id=$1 AND state='sending'`
	failOutboxQuery = `UPDATE outbox_message SET state='failed', sealed=NULL, error_code=$2, last_error=$3, updated_at=$4
		WHERE id=$1 AND state IN ('pending', 'sending')`
	// Texts a stopped process was sending: Twilio's answer was never recorded.
	sendingOutboxQuery = `SELECT ` + outboxColumns + ` FROM outbox_message WHERE state='sending' ORDER BY id`
	// A text a stopped process was sending that Twilio's log does not have goes again.
	requeueOutboxQuery = `UPDATE outbox_message SET state='pending', next_attempt_at=$2, updated_at=$2 WHERE id=$1 AND state='sending'`
	countOutboxQuery   = `SELECT COUNT(*) FROM outbox_message WHERE state IN ('pending', 'sending')`
	// Texts still waiting with their body sealed under another key than the current one.
	sealedNotWithOutboxQuery = `SELECT ` + outboxColumns + ` FROM outbox_message
		WHERE sealed IS NOT NULL AND key_id<>$1 ORDER BY id`
	resealOutboxQuery  = `UPDATE outbox_message SET key_id=$3, sealed=$4 WHERE id=$1 AND key_id=$2 AND sealed IS NOT NULL`
	outboxAttemptError = 500 // characters of an error kept with a text
)

// OutboxState is where a text in the outbox stands.
type OutboxState string

// The states of a text in the outbox.
const (
	OutboxPending OutboxState = "pending" // waiting for its turn or its retry
	OutboxSending OutboxState = "sending" // handed to Twilio, answer not recorded yet
	OutboxSent    OutboxState = "sent"    // Twilio accepted it (MessageSID set)
	OutboxFailed  OutboxState = "failed"  // given up: refused, or retries exhausted
)

// OutboxMessage is one text or MMS to a patient in the outbox. Sealed holds the body and
// media URLs (sealed by the outbox under KeyID), nil once the text is finished.
type OutboxMessage struct {
	ID            int64
	LoginID       string
	PortalID      string
	Kind          string
	From          string
	To            string
	KeyID         string
	Sealed        []byte
	EventID       string // the Matrix event shown with it: a staff message or a bridge notice
	SenderMXID    string
	State         OutboxState
	Attempts      int
	NextAttemptAt time.Time
	MessageSID    string
	ErrorCode     int
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// OutboxQuery runs the outbox_message table's statements.
type OutboxQuery struct {
	*dbutil.QueryHelper[*OutboxMessage]
}

// Scan reads one row.
func (m *OutboxMessage) Scan(row dbutil.Scannable) (*OutboxMessage, error) {
	var next, created, updated int64
	err := row.Scan(&m.ID, &m.LoginID, &m.PortalID, &m.Kind, &m.From, &m.To, &m.KeyID, &m.Sealed, &m.EventID,
		&m.SenderMXID, &m.State, &m.Attempts, &next, &m.MessageSID, &m.ErrorCode, &m.LastError, &created, &updated)
	if err != nil {
		return nil, err
	}
	m.NextAttemptAt, m.CreatedAt, m.UpdatedAt = time.UnixMilli(next), time.UnixMilli(created), time.UnixMilli(updated)
	return m, nil
}

// Insert stores a new pending text, due at once, and sets its ID. A staff message's text
// (kind staff_reply) is stored once per event: when its event is already queued, Insert
// stores nothing and returns the row queued before.
func (oq *OutboxQuery) Insert(ctx context.Context, m *OutboxMessage) (already *OutboxMessage, err error) {
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	m.State, m.NextAttemptAt, m.UpdatedAt = OutboxPending, m.CreatedAt, m.CreatedAt
	err = oq.GetDB().QueryRow(ctx, insertOutboxQuery, m.LoginID, m.PortalID, m.Kind, m.From, m.To, m.KeyID, m.Sealed,
		m.EventID, m.SenderMXID, m.CreatedAt.UnixMilli()).Scan(&m.ID)
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	already, err = oq.QueryOne(ctx, getOutboxByEventQuery, m.LoginID, m.PortalID, m.EventID)
	if err == nil && already == nil {
		err = fmt.Errorf("text for event %s neither stored nor found", m.EventID)
	}
	return already, err
}

// Get returns a text by its ID, or nil.
func (oq *OutboxQuery) Get(ctx context.Context, id int64) (*OutboxMessage, error) {
	return oq.QueryOne(ctx, getOutboxQuery, id)
}

// GetDue returns up to limit conversations' next texts that are due at now, oldest first,
// leaving out those from the clinic numbers in notFrom (numbers held back by their pace).
// Their KeyID and Sealed are left empty: Claim reads them.
func (oq *OutboxQuery) GetDue(ctx context.Context, now time.Time, limit int, notFrom ...string) ([]*OutboxMessage, error) {
	args := []any{now.UnixMilli(), limit}
	filter := ""
	if len(notFrom) > 0 {
		params := make([]string, len(notFrom))
		for i, from := range notFrom {
			args = append(args, from)
			params[i] = fmt.Sprintf("$%d", len(args))
		}
		filter = "AND o.from_phone NOT IN (" + strings.Join(params, ", ") + ")"
	}
	return oq.QueryMany(ctx, fmt.Sprintf(getDueOutboxQuery, filter), args...)
}

// NextDue is when the earliest conversation head is due; ok is false when none is pending.
func (oq *OutboxQuery) NextDue(ctx context.Context) (next time.Time, ok bool, err error) {
	var at sql.NullInt64
	if err = oq.GetDB().QueryRow(ctx, nextDueOutboxQuery).Scan(&at); err != nil || !at.Valid {
		return time.Time{}, false, err
	}
	return time.UnixMilli(at.Int64), true, nil
}

// Claim marks a pending text as being sent, counts the attempt, and reads into m its
// sealed body (KeyID, Sealed) and attempts counted so far, this one included. It reports
// false, changing nothing, when the text was not pending (another worker has it, or it is
// finished).
func (oq *OutboxQuery) Claim(ctx context.Context, m *OutboxMessage, now time.Time) (bool, error) {
	err := oq.GetDB().QueryRow(ctx, claimOutboxQuery, m.ID, now.UnixMilli()).Scan(&m.KeyID, &m.Sealed, &m.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	m.State, m.UpdatedAt = OutboxSending, time.UnixMilli(now.UnixMilli())
	return true, nil
}

// MarkSent records Twilio's acceptance and drops the sealed body.
func (oq *OutboxQuery) MarkSent(ctx context.Context, id int64, messageSID string, now time.Time) error {
	return oq.Exec(ctx, sentOutboxQuery, id, messageSID, now.UnixMilli())
}

// MarkRetry puts a text Twilio certainly did not accept back in line for at.
func (oq *OutboxQuery) MarkRetry(ctx context.Context, id int64, at time.Time, code int, reason string, now time.Time) error {
	return oq.Exec(ctx, retryOutboxQuery, id, at.UnixMilli(), code, truncateError(reason), now.UnixMilli())
}

// MarkFailed gives a text up and drops the sealed body. It reports false when the text
// was already finished.
func (oq *OutboxQuery) MarkFailed(ctx context.Context, id int64, code int, reason string, now time.Time) (bool, error) {
	return oq.execOne(ctx, failOutboxQuery, id, code, truncateError(reason), now.UnixMilli())
}

// Sending lists the texts a stopped process was sending (their updated_at is when the
// last attempt began), oldest first.
func (oq *OutboxQuery) Sending(ctx context.Context) ([]*OutboxMessage, error) {
	return oq.QueryMany(ctx, sendingOutboxQuery)
}

// Requeue puts a text a stopped process was sending back in line, due at now.
func (oq *OutboxQuery) Requeue(ctx context.Context, id int64, now time.Time) error {
	return oq.Exec(ctx, requeueOutboxQuery, id, now.UnixMilli())
}

// CountUnfinished counts the texts waiting or being sent.
func (oq *OutboxQuery) CountUnfinished(ctx context.Context) (n int, err error) {
	err = oq.GetDB().QueryRow(ctx, countOutboxQuery).Scan(&n)
	return
}

func (oq *OutboxQuery) execOne(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := oq.GetDB().Exec(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func truncateError(reason string) string {
	if len(reason) > outboxAttemptError {
		return reason[:outboxAttemptError]
	}
	return reason
}

// SealedNotWith lists the texts whose body is still sealed (not finished) under another key
// than keyID (few: the texts waiting for their turn).
func (oq *OutboxQuery) SealedNotWith(ctx context.Context, keyID string) ([]*OutboxMessage, error) {
	return oq.QueryMany(ctx, sealedNotWithOutboxQuery, keyID)
}

// Reseal replaces a waiting text's sealed body if it is still sealed with oldKeyID; false
// when it changed meanwhile (sent, failed, or re-sealed).
func (oq *OutboxQuery) Reseal(ctx context.Context, id int64, oldKeyID, newKeyID string, sealed []byte) (bool, error) {
	return oq.execOne(ctx, resealOutboxQuery, id, oldKeyID, newKeyID, sealed)
}
