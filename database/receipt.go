package database

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"go.mau.fi/util/dbutil"
)

// ReceiptState is where an inbound webhook is on its way into Matrix.
type ReceiptState string

const (
	// ReceiptPending is stored and not yet in the room.
	ReceiptPending ReceiptState = "pending"
	// ReceiptDelivered reached the room.
	ReceiptDelivered ReceiptState = "delivered"
)

const (
	receiptColumns     = `message_sid, login_id, patient_phone, payload, state, attempts, last_error, received_at, next_attempt_at, delivered_at`
	getReceiptQuery    = `SELECT ` + receiptColumns + ` FROM inbound_receipt WHERE message_sid=$1`
	insertReceiptQuery = `
		INSERT INTO inbound_receipt (message_sid, login_id, patient_phone, payload, state, attempts, last_error, received_at, next_attempt_at)
		VALUES ($1, $2, $3, $4, 'pending', 0, '', $5, $5)
		ON CONFLICT (message_sid) DO NOTHING
	`
	// Only the oldest pending text of each conversation is due: a later text waits for an
	// earlier one that is being retried, so each conversation keeps its order.
	getDueReceiptsQuery = `
		SELECT ` + receiptColumns + ` FROM inbound_receipt r
		WHERE state='pending' AND next_attempt_at<=$1 AND NOT EXISTS (
			SELECT 1 FROM inbound_receipt o
			WHERE o.state='pending' AND o.login_id=r.login_id AND o.patient_phone=r.patient_phone
			  AND (o.received_at<r.received_at OR (o.received_at=r.received_at AND o.message_sid<r.message_sid))
		)
		ORDER BY received_at, message_sid LIMIT $2
	`
	nextDueReceiptQuery = `SELECT MIN(next_attempt_at) FROM inbound_receipt WHERE state='pending'`
	lastReceivedQuery   = `SELECT MAX(received_at) FROM inbound_receipt WHERE login_id=$1`
	markDeliveredQuery  = `
		UPDATE inbound_receipt SET state='delivered', attempts=attempts+1, last_error='', delivered_at=$2
		WHERE message_sid=$1
	`
	markRetryQuery = `
		UPDATE inbound_receipt SET attempts=attempts+1, last_error=$2, next_attempt_at=$3
		WHERE message_sid=$1 AND state='pending'
	`
)

// Receipt is one inbound webhook as stored before it was answered.
type Receipt struct {
	MessageSID    string
	LoginID       string
	PatientPhone  string
	Params        url.Values
	State         ReceiptState
	Attempts      int
	LastError     string
	ReceivedAt    time.Time
	NextAttemptAt time.Time
	DeliveredAt   time.Time
}

// ReceiptQuery runs the inbound_receipt table's statements.
type ReceiptQuery struct {
	*dbutil.QueryHelper[*Receipt]
}

// Scan reads one row.
func (r *Receipt) Scan(row dbutil.Scannable) (*Receipt, error) {
	var payload string
	var receivedAt, nextAt int64
	var deliveredAt sql.NullInt64
	err := row.Scan(&r.MessageSID, &r.LoginID, &r.PatientPhone, &payload, &r.State, &r.Attempts,
		&r.LastError, &receivedAt, &nextAt, &deliveredAt)
	if err != nil {
		return nil, err
	}
	if err = json.Unmarshal([]byte(payload), &r.Params); err != nil {
		return nil, fmt.Errorf("failed to parse stored webhook of %s: %w", r.MessageSID, err)
	}
	r.ReceivedAt = time.UnixMilli(receivedAt)
	r.NextAttemptAt = time.UnixMilli(nextAt)
	if deliveredAt.Valid {
		r.DeliveredAt = time.UnixMilli(deliveredAt.Int64)
	}
	return r, nil
}

// Insert stores a new receipt as pending. It reports false, changing nothing, when the
// MessageSid is already stored (Twilio retried the webhook).
func (rq *ReceiptQuery) Insert(ctx context.Context, r *Receipt) (inserted bool, err error) {
	payload, err := json.Marshal(r.Params)
	if err != nil {
		return false, err
	}
	res, err := rq.GetDB().Exec(ctx, insertReceiptQuery, r.MessageSID, r.LoginID, r.PatientPhone,
		string(payload), r.ReceivedAt.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Get returns a receipt by MessageSid, or nil.
func (rq *ReceiptQuery) Get(ctx context.Context, messageSID string) (*Receipt, error) {
	return rq.QueryOne(ctx, getReceiptQuery, messageSID)
}

// GetDue returns pending receipts whose next attempt is due, oldest first, at most one
// per conversation: the oldest pending one, so that delivery keeps each conversation's order.
func (rq *ReceiptQuery) GetDue(ctx context.Context, now time.Time, limit int) ([]*Receipt, error) {
	return rq.QueryMany(ctx, getDueReceiptsQuery, now.UnixMilli(), limit)
}

// NextDue returns when the earliest pending receipt is due, or false when none is pending.
func (rq *ReceiptQuery) NextDue(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	err := rq.GetDB().QueryRow(ctx, nextDueReceiptQuery).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, false, err
	}
	return time.UnixMilli(next.Int64), true, nil
}

// MarkDelivered records that the receipt reached the room.
func (rq *ReceiptQuery) MarkDelivered(ctx context.Context, messageSID string, at time.Time) error {
	return rq.Exec(ctx, markDeliveredQuery, messageSID, at.UnixMilli())
}

// MarkRetry records a failed attempt and when to try again. lastError must not hold PHI.
func (rq *ReceiptQuery) MarkRetry(ctx context.Context, messageSID, lastError string, next time.Time) error {
	return rq.Exec(ctx, markRetryQuery, messageSID, lastError, next.UnixMilli())
}

// LastReceivedAt is when the clinic number's newest stored text arrived (zero: none).
func (rq *ReceiptQuery) LastReceivedAt(ctx context.Context, loginID string) (time.Time, error) {
	var at sql.NullInt64
	if err := rq.GetDB().QueryRow(ctx, lastReceivedQuery, loginID).Scan(&at); err != nil || !at.Valid {
		return time.Time{}, err
	}
	return time.UnixMilli(at.Int64), nil
}
