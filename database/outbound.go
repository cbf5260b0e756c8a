package database

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	outboundColumns     = `message_sid, login_id, portal_id, event_id, sender_mxid, status, error_code, created_at, updated_at, kind, remote_id`
	getOutboundQuery    = `SELECT ` + outboundColumns + ` FROM outbound_message WHERE message_sid=$1`
	insertOutboundQuery = `INSERT INTO outbound_message (` + outboundColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10)`
	// RETURNING: SQLite 3.35 and later (mattn/go-sqlite3 v1.14.52 bundles 3.53) and PostgreSQL.
	advanceOutboundQuery = `UPDATE outbound_message SET status=$3, error_code=$4, updated_at=$5
		WHERE message_sid=$1 AND login_id=$2 AND status NOT IN (%s) RETURNING ` + outboundColumns
	// Statuses after which Twilio still owes a callback (delivered, read, undelivered,
	// failed and canceled are final).
	unfinishedOutboundQuery = `
		SELECT ` + outboundColumns + ` FROM outbound_message
		WHERE login_id=$1 AND status IN ('accepted', 'scheduled', 'queued', 'sending', 'sent')
		  AND created_at<$2 AND created_at>=$3
		ORDER BY created_at LIMIT $4
	`
)

// Outbound is a text staff sent and its latest delivery status at Twilio.
type Outbound struct {
	MessageSID string
	LoginID    string
	PortalID   string
	EventID    string // the staff member's Matrix event
	SenderMXID string
	Status     string
	ErrorCode  int
	CreatedAt  time.Time
	UpdatedAt  time.Time
	Kind       string // the outbox's kind of text ('' for texts sent before v9)
	RemoteID   string // the bridgev2 message of a staff text ('' for others)
}

// OutboundQuery runs the outbound_message table's statements.
type OutboundQuery struct {
	*dbutil.QueryHelper[*Outbound]
}

// Scan reads one row.
func (o *Outbound) Scan(row dbutil.Scannable) (*Outbound, error) {
	var createdAt, updatedAt int64
	err := row.Scan(&o.MessageSID, &o.LoginID, &o.PortalID, &o.EventID, &o.SenderMXID, &o.Status,
		&o.ErrorCode, &createdAt, &updatedAt, &o.Kind, &o.RemoteID)
	if err != nil {
		return nil, err
	}
	o.CreatedAt, o.UpdatedAt = time.UnixMilli(createdAt), time.UnixMilli(updatedAt)
	return o, nil
}

// Insert records a text Twilio accepted.
func (oq *OutboundQuery) Insert(ctx context.Context, o *Outbound) error {
	if o.CreatedAt.IsZero() {
		o.CreatedAt = time.Now()
	}
	return oq.Exec(ctx, insertOutboundQuery, o.MessageSID, o.LoginID, o.PortalID, o.EventID, o.SenderMXID,
		o.Status, o.ErrorCode, o.CreatedAt.UnixMilli(), o.Kind, o.RemoteID)
}

// Get returns a text by its MessageSid, or nil.
func (oq *OutboundQuery) Get(ctx context.Context, messageSID string) (*Outbound, error) {
	return oq.QueryOne(ctx, getOutboundQuery, messageSID)
}

// AdvanceStatus moves the clinic number's text to status, in one statement, unless its
// stored status is one of kept (the statuses status does not replace, never empty), and
// returns the updated text. It returns nil, changing nothing, when no text of that
// MessageSid and login has a status outside kept: Get tells which.
func (oq *OutboundQuery) AdvanceStatus(ctx context.Context, messageSID, loginID, status string, errorCode int, kept []string) (*Outbound, error) {
	if len(kept) == 0 {
		return nil, fmt.Errorf("no statuses kept for %q", status)
	}
	args := []any{messageSID, loginID, status, errorCode, time.Now().UnixMilli()}
	params := make([]string, len(kept))
	for i, s := range kept {
		args = append(args, s)
		params[i] = fmt.Sprintf("$%d", len(args))
	}
	return oq.QueryOne(ctx, fmt.Sprintf(advanceOutboundQuery, strings.Join(params, ", ")), args...)
}

// SetEvent names the room event that shows a text (a notice posted after it was sent).
func (oq *OutboundQuery) SetEvent(ctx context.Context, messageSID, eventID, senderMXID string) error {
	return oq.Exec(ctx, `UPDATE outbound_message SET event_id=$2, sender_mxid=$3 WHERE message_sid=$1`, messageSID, eventID, senderMXID)
}

// LastAt is when the conversation's newest text went out (zero: none).
func (oq *OutboundQuery) LastAt(ctx context.Context, loginID, portalID string) (time.Time, error) {
	var at sql.NullInt64
	err := oq.GetDB().QueryRow(ctx, `SELECT MAX(created_at) FROM outbound_message WHERE login_id=$1 AND portal_id=$2`, loginID, portalID).Scan(&at)
	if err != nil || !at.Valid {
		return time.Time{}, err
	}
	return time.UnixMilli(at.Int64), nil
}

// Unfinished returns the clinic number's texts created between since and before whose
// final status has not arrived, oldest first, at most limit.
func (oq *OutboundQuery) Unfinished(ctx context.Context, loginID string, since, before time.Time, limit int) ([]*Outbound, error) {
	return oq.QueryMany(ctx, unfinishedOutboundQuery, loginID, before.UnixMilli(), since.UnixMilli(), limit)
}
