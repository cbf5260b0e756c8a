package database

import (
	"context"
	"database/sql"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"
)

// ScheduledState is where a scheduled message is in its life.
type ScheduledState string

// The states of a scheduled message: pending until due, sending while the bridge sends
// it (claimed, so it is sent once), then sent, failed or (by staff, while pending) cancelled.
const (
	ScheduledPending   ScheduledState = "pending"
	ScheduledSending   ScheduledState = "sending"
	ScheduledSent      ScheduledState = "sent"
	ScheduledCancelled ScheduledState = "cancelled"
	ScheduledFailed    ScheduledState = "failed"
)

const (
	scheduledColumns     = `id, login_id, portal_id, created_by, created_at, send_at, key_id, body, state, sent_at, error`
	insertScheduledQuery = `
		INSERT INTO scheduled_message (login_id, portal_id, created_by, created_at, send_at, key_id, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		RETURNING id
	`
	getScheduledQuery         = `SELECT ` + scheduledColumns + ` FROM scheduled_message WHERE id=$1`
	listPendingScheduledQuery = `
		SELECT ` + scheduledColumns + ` FROM scheduled_message
		WHERE login_id=$1 AND portal_id=$2 AND state='pending' ORDER BY send_at, id
	`
	dueScheduledQuery = `
		SELECT ` + scheduledColumns + ` FROM scheduled_message
		WHERE state='pending' AND send_at<=$1 ORDER BY send_at, id LIMIT $2
	`
	nextScheduledQuery        = `SELECT MIN(send_at) FROM scheduled_message WHERE state='pending'`
	listSendingScheduledQuery = `SELECT ` + scheduledColumns + ` FROM scheduled_message WHERE state='sending' ORDER BY id`
	// claimScheduledQuery is the compare-and-set that makes each message go out once.
	claimScheduledQuery = `UPDATE scheduled_message SET state='sending' WHERE id=$1 AND state='pending'`
	// Once a message is done with, its sealed text is dropped: the room keeps the record.
	cancelScheduledQuery = `
		UPDATE scheduled_message SET state='cancelled', key_id='', body=$4
		WHERE id=$1 AND login_id=$2 AND portal_id=$3 AND state='pending'
	`
	finishScheduledQuery = `
		UPDATE scheduled_message SET state=$2, sent_at=$3, error=$4, key_id='', body=$5
		WHERE id=$1 AND state='sending'
	`
)

// ScheduledMessage is a message staff wrote for later. Body is the text sealed with the
// key KeyID (empty once the message is sent, failed or cancelled).
type ScheduledMessage struct {
	ID        int64
	LoginID   string
	PortalID  string
	CreatedBy string // the staff member's Matrix ID
	CreatedAt time.Time
	SendAt    time.Time
	KeyID     string
	Body      []byte
	State     ScheduledState
	SentAt    time.Time
	Error     string
}

// Actor is the staff member who wrote the message, as the audit log names them.
func (m *ScheduledMessage) Actor() AuditActor { return StaffActor(id.UserID(m.CreatedBy)) }

// ScheduledMessageQuery runs the scheduled_message table's statements.
type ScheduledMessageQuery struct {
	*dbutil.QueryHelper[*ScheduledMessage]
}

// Scheduled runs the scheduled_message table's statements.
func (db *Database) Scheduled() *ScheduledMessageQuery {
	return &ScheduledMessageQuery{dbutil.MakeQueryHelper(db.Database, func(qh *dbutil.QueryHelper[*ScheduledMessage]) *ScheduledMessage {
		return &ScheduledMessage{}
	})}
}

// Scan reads one row.
func (m *ScheduledMessage) Scan(row dbutil.Scannable) (*ScheduledMessage, error) {
	var createdAt, sendAt, sentAt int64
	err := row.Scan(&m.ID, &m.LoginID, &m.PortalID, &m.CreatedBy, &createdAt, &sendAt, &m.KeyID, &m.Body,
		&m.State, &sentAt, &m.Error)
	if err != nil {
		return nil, err
	}
	m.CreatedAt, m.SendAt, m.SentAt = time.UnixMilli(createdAt), time.UnixMilli(sendAt), unixMilliOrZero(sentAt)
	return m, nil
}

// Insert stores a pending message and sets its ID.
func (sq *ScheduledMessageQuery) Insert(ctx context.Context, m *ScheduledMessage) error {
	m.State = ScheduledPending
	return sq.GetDB().QueryRow(ctx, insertScheduledQuery, m.LoginID, m.PortalID, m.CreatedBy,
		m.CreatedAt.UnixMilli(), m.SendAt.UnixMilli(), m.KeyID, m.Body).Scan(&m.ID)
}

// Get returns a message by its number, or nil.
func (sq *ScheduledMessageQuery) Get(ctx context.Context, id int64) (*ScheduledMessage, error) {
	return sq.QueryOne(ctx, getScheduledQuery, id)
}

// ListPending returns a conversation's pending messages, the soonest first.
func (sq *ScheduledMessageQuery) ListPending(ctx context.Context, loginID, portalID string) ([]*ScheduledMessage, error) {
	return sq.QueryMany(ctx, listPendingScheduledQuery, loginID, portalID)
}

// GetDue returns up to limit pending messages due at now, the oldest first.
func (sq *ScheduledMessageQuery) GetDue(ctx context.Context, now time.Time, limit int) ([]*ScheduledMessage, error) {
	return sq.QueryMany(ctx, dueScheduledQuery, now.UnixMilli(), limit)
}

// NextDue returns when the soonest pending message is due; ok is false when none is pending.
func (sq *ScheduledMessageQuery) NextDue(ctx context.Context) (next time.Time, ok bool, err error) {
	var sendAt sql.NullInt64
	if err = sq.GetDB().QueryRow(ctx, nextScheduledQuery).Scan(&sendAt); err != nil || !sendAt.Valid {
		return time.Time{}, false, err
	}
	return time.UnixMilli(sendAt.Int64), true, nil
}

// ListSending returns the messages claimed for sending whose outcome was never recorded.
func (sq *ScheduledMessageQuery) ListSending(ctx context.Context) ([]*ScheduledMessage, error) {
	return sq.QueryMany(ctx, listSendingScheduledQuery)
}

// Claim takes a pending message for sending; of two callers, only one gets true.
func (sq *ScheduledMessageQuery) Claim(ctx context.Context, id int64) (bool, error) {
	return sq.affectedOne(ctx, claimScheduledQuery, id)
}

// Cancel cancels a conversation's pending message; false when it is not pending there.
func (sq *ScheduledMessageQuery) Cancel(ctx context.Context, id int64, loginID, portalID string) (bool, error) {
	return sq.affectedOne(ctx, cancelScheduledQuery, id, loginID, portalID, []byte{})
}

// Finish records the outcome (sent or failed) of a claimed message and drops its text;
// false when the message was not claimed.
func (sq *ScheduledMessageQuery) Finish(ctx context.Context, id int64, state ScheduledState, at time.Time, errText string) (bool, error) {
	var sentAt int64
	if state == ScheduledSent {
		sentAt = at.UnixMilli()
	}
	return sq.affectedOne(ctx, finishScheduledQuery, id, state, sentAt, errText, []byte{})
}

func (sq *ScheduledMessageQuery) affectedOne(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := sq.GetDB().Exec(ctx, query, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

const (
	pendingKeyCountsQuery = `SELECT key_id, COUNT(*) FROM scheduled_message WHERE state='pending' GROUP BY key_id`
	pendingNotWithQuery   = `
		SELECT ` + scheduledColumns + ` FROM scheduled_message
		WHERE state='pending' AND key_id<>$1 ORDER BY id
	`
	resealScheduledQuery = `UPDATE scheduled_message SET key_id=$3, body=$4 WHERE id=$1 AND key_id=$2 AND state='pending'`
)

// PendingKeyCounts counts the pending messages sealed with each key (sent, cancelled and
// failed ones hold no text).
func (sq *ScheduledMessageQuery) PendingKeyCounts(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{}
	return counts, addKeyCounts(ctx, sq.GetDB(), counts, pendingKeyCountsQuery)
}

// PendingNotSealedWith lists the pending messages sealed with another key than keyID
// (few: follow-ups waiting for their day).
func (sq *ScheduledMessageQuery) PendingNotSealedWith(ctx context.Context, keyID string) ([]*ScheduledMessage, error) {
	return sq.QueryMany(ctx, pendingNotWithQuery, keyID)
}

// Reseal replaces a pending message's sealed text if it is still pending and sealed with
// oldKeyID; false when it changed meanwhile (sent, cancelled, or re-sealed).
func (sq *ScheduledMessageQuery) Reseal(ctx context.Context, id int64, oldKeyID, newKeyID string, body []byte) (bool, error) {
	res, err := sq.GetDB().Exec(ctx, resealScheduledQuery, id, oldKeyID, newKeyID, body)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
