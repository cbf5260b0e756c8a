package database

import (
	"context"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	secureReadPendingColumns = `login_id, portal_id, message_id, read_at`
	// upsertReadPendingQuery keeps the newest reading of a conversation not yet shown.
	upsertReadPendingQuery = `
		INSERT INTO secure_read_pending (` + secureReadPendingColumns + `) VALUES ($1, $2, $3, $4)
		ON CONFLICT (login_id, portal_id) DO UPDATE SET message_id=excluded.message_id, read_at=excluded.read_at
			WHERE excluded.message_id>secure_read_pending.message_id
	`
	dueReadPendingQuery = `SELECT ` + secureReadPendingColumns + ` FROM secure_read_pending ORDER BY read_at LIMIT $1`
	// doneReadPendingQuery removes a reading once shown, unless a newer one replaced it.
	doneReadPendingQuery = `DELETE FROM secure_read_pending WHERE login_id=$1 AND portal_id=$2 AND message_id<=$3`
)

// SecureReadPending is a patient's reading, in a web replica, of the staff messages up to
// MessageID, which the bridge has yet to show in the room.
type SecureReadPending struct {
	LoginID   string
	PortalID  string
	MessageID int64
	ReadAt    time.Time
}

// SecureReadPendingQuery runs the secure_read_pending table's statements.
type SecureReadPendingQuery struct {
	*dbutil.QueryHelper[*SecureReadPending]
}

// Scan reads one row.
func (p *SecureReadPending) Scan(row dbutil.Scannable) (*SecureReadPending, error) {
	var read int64
	if err := row.Scan(&p.LoginID, &p.PortalID, &p.MessageID, &read); err != nil {
		return nil, err
	}
	p.ReadAt = time.UnixMilli(read)
	return p, nil
}

// Add records a reading; an older one of the same conversation is replaced.
func (rq *SecureReadPendingQuery) Add(ctx context.Context, p *SecureReadPending) error {
	return rq.Exec(ctx, upsertReadPendingQuery, p.LoginID, p.PortalID, p.MessageID, p.ReadAt.UnixMilli())
}

// Due returns up to limit readings to show, oldest first.
func (rq *SecureReadPendingQuery) Due(ctx context.Context, limit int) ([]*SecureReadPending, error) {
	return rq.QueryMany(ctx, dueReadPendingQuery, limit)
}

// Done removes a reading the bridge has shown (a newer one of the conversation stays).
func (rq *SecureReadPendingQuery) Done(ctx context.Context, p *SecureReadPending) error {
	return rq.Exec(ctx, doneReadPendingQuery, p.LoginID, p.PortalID, p.MessageID)
}
