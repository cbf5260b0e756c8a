package database

import (
	"context"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	secureSessionColumns     = `session_hash, link_hash, login_id, portal_id, created_at, last_seen_at, expires_at, ended_at`
	insertSecureSessionQuery = `INSERT INTO secure_session (` + secureSessionColumns + `) VALUES ($1, $2, $3, $4, $5, $5, $6, 0)`
	getSecureSessionQuery    = `SELECT ` + secureSessionColumns + ` FROM secure_session WHERE session_hash=$1`
	touchSessionQuery        = `UPDATE secure_session SET last_seen_at=$2 WHERE session_hash=$1 AND ended_at=0`
	endSessionQuery          = `UPDATE secure_session SET ended_at=$2 WHERE session_hash=$1 AND ended_at=0`
	endSessionsQuery         = `UPDATE secure_session SET ended_at=$3 WHERE login_id=$1 AND portal_id=$2 AND ended_at=0`
)

// SecureSession is a verified browser; only its cookie's keyed hash is kept.
type SecureSession struct {
	SessionHash string
	LinkHash    string
	LoginID     string
	PortalID    string
	CreatedAt   time.Time
	LastSeenAt  time.Time
	ExpiresAt   time.Time // absolute end
	EndedAt     time.Time // zero while open
}

// SecureSessionQuery runs the secure_session table's statements.
type SecureSessionQuery struct {
	*dbutil.QueryHelper[*SecureSession]
}

// Scan reads one row.
func (s *SecureSession) Scan(row dbutil.Scannable) (*SecureSession, error) {
	var created, seen, expires, ended int64
	err := row.Scan(&s.SessionHash, &s.LinkHash, &s.LoginID, &s.PortalID, &created, &seen, &expires, &ended)
	if err != nil {
		return nil, err
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = time.UnixMilli(created), time.UnixMilli(seen), time.UnixMilli(expires)
	s.EndedAt = unixMilliOrZero(ended)
	return s, nil
}

// Insert stores a new session.
func (sq *SecureSessionQuery) Insert(ctx context.Context, s *SecureSession) error {
	return sq.Exec(ctx, insertSecureSessionQuery, s.SessionHash, s.LinkHash, s.LoginID, s.PortalID,
		s.CreatedAt.UnixMilli(), s.ExpiresAt.UnixMilli())
}

// Get returns a session by its hash, or nil.
func (sq *SecureSessionQuery) Get(ctx context.Context, sessionHash string) (*SecureSession, error) {
	return sq.QueryOne(ctx, getSecureSessionQuery, sessionHash)
}

// Touch records activity (the idle timeout counts from the last one).
func (sq *SecureSessionQuery) Touch(ctx context.Context, sessionHash string, at time.Time) error {
	return sq.Exec(ctx, touchSessionQuery, sessionHash, at.UnixMilli())
}

// End ends one session (sign-out or timeout).
func (sq *SecureSessionQuery) End(ctx context.Context, sessionHash string, at time.Time) error {
	return sq.Exec(ctx, endSessionQuery, sessionHash, at.UnixMilli())
}

// EndAll ends every open session of a conversation (revoke).
func (sq *SecureSessionQuery) EndAll(ctx context.Context, loginID, portalID string, at time.Time) error {
	return sq.Exec(ctx, endSessionsQuery, loginID, portalID, at.UnixMilli())
}
