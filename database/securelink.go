package database

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	secureLinkColumns     = `token_hash, login_id, portal_id, created_at, expires_at, revoked_at, failed_codes, locked_at`
	insertSecureLinkQuery = `INSERT INTO secure_link (` + secureLinkColumns + `) VALUES ($1, $2, $3, $4, $5, 0, 0, 0)`
	getSecureLinkQuery    = `SELECT ` + secureLinkColumns + ` FROM secure_link WHERE token_hash=$1`
	revokeLinksQuery      = `UPDATE secure_link SET revoked_at=$3 WHERE login_id=$1 AND portal_id=$2 AND revoked_at=0`
	// claimAttemptQuery counts an answer (code, date of birth) as wrong before it is
	// compared, and locks the link when the count reaches the limit, in one statement: of
	// any number of answers at once, in any number of processes, at most limit are ever
	// compared. It locks the row until the transaction ends, so a right answer gives its
	// claim back (releaseAttemptQuery) before another answer is judged.
	claimAttemptQuery = `
		UPDATE secure_link SET failed_codes=failed_codes+1,
			locked_at=CASE WHEN failed_codes+1>=$2 THEN $3 ELSE locked_at END
		WHERE token_hash=$1 AND failed_codes<$2 AND locked_at=0 AND revoked_at=0 AND expires_at>$3
		RETURNING failed_codes
	`
	// releaseAttemptQuery gives a right answer's claim back: it was not a wrong answer,
	// and the count after it is below the limit again.
	releaseAttemptQuery = `
		UPDATE secure_link SET failed_codes=failed_codes-1, locked_at=CASE WHEN failed_codes-1<$2 THEN 0 ELSE locked_at END
		WHERE token_hash=$1 AND failed_codes>0
	`
	unlockLinksQuery     = `UPDATE secure_link SET failed_codes=0, locked_at=0 WHERE login_id=$1 AND portal_id=$2 AND revoked_at=0`
	deleteOldLinksQuery  = `DELETE FROM secure_link WHERE expires_at<=$1`
	activeLinkCountQuery = `SELECT COUNT(*) FROM secure_link WHERE login_id=$1 AND portal_id=$2 AND revoked_at=0 AND expires_at>$3`
)

// SecureLink is a link texted to a patient; only its token's keyed hash is kept.
type SecureLink struct {
	TokenHash   string
	LoginID     string
	PortalID    string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	RevokedAt   time.Time // zero while not revoked
	FailedCodes int
	LockedAt    time.Time // zero while not locked
}

// SecureLinkQuery runs the secure_link table's statements.
type SecureLinkQuery struct {
	*dbutil.QueryHelper[*SecureLink]
}

func unixMilliOrZero(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Scan reads one row.
func (l *SecureLink) Scan(row dbutil.Scannable) (*SecureLink, error) {
	var created, expires, revoked, locked int64
	err := row.Scan(&l.TokenHash, &l.LoginID, &l.PortalID, &created, &expires, &revoked, &l.FailedCodes, &locked)
	if err != nil {
		return nil, err
	}
	l.CreatedAt, l.ExpiresAt = time.UnixMilli(created), time.UnixMilli(expires)
	l.RevokedAt, l.LockedAt = unixMilliOrZero(revoked), unixMilliOrZero(locked)
	return l, nil
}

// Insert stores a new link.
func (lq *SecureLinkQuery) Insert(ctx context.Context, l *SecureLink) error {
	return lq.Exec(ctx, insertSecureLinkQuery, l.TokenHash, l.LoginID, l.PortalID, l.CreatedAt.UnixMilli(), l.ExpiresAt.UnixMilli())
}

// Get returns a link by its token hash, or nil.
func (lq *SecureLinkQuery) Get(ctx context.Context, tokenHash string) (*SecureLink, error) {
	return lq.QueryOne(ctx, getSecureLinkQuery, tokenHash)
}

// RevokeAll revokes every link of a conversation.
func (lq *SecureLinkQuery) RevokeAll(ctx context.Context, loginID, portalID string, at time.Time) error {
	return lq.Exec(ctx, revokeLinksQuery, loginID, portalID, at.UnixMilli())
}

// ClaimAttempt counts an answer as wrong before it is compared and returns the count
// with it (the link is locked when it equals limit); 0 means the link has no tries left,
// or was revoked or expired since it was read.
// Call it in a transaction that also compares the answer and, for a right one, calls
// ReleaseAttempt: the link's row stays locked until then.
func (lq *SecureLinkQuery) ClaimAttempt(ctx context.Context, tokenHash string, limit int, at time.Time) (count int, err error) {
	err = lq.GetDB().QueryRow(ctx, claimAttemptQuery, tokenHash, limit, at.UnixMilli()).Scan(&count)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return count, err
}

// ReleaseAttempt gives back the claim of an answer that was right.
func (lq *SecureLinkQuery) ReleaseAttempt(ctx context.Context, tokenHash string, limit int) error {
	return lq.Exec(ctx, releaseAttemptQuery, tokenHash, limit)
}

// UnlockAll lifts the lockout and wrong-code count of a conversation's live links.
func (lq *SecureLinkQuery) UnlockAll(ctx context.Context, loginID, portalID string) error {
	return lq.Exec(ctx, unlockLinksQuery, loginID, portalID)
}

// CountActive counts a conversation's links that are neither revoked nor expired.
func (lq *SecureLinkQuery) CountActive(ctx context.Context, loginID, portalID string, now time.Time) (n int, err error) {
	err = lq.GetDB().QueryRow(ctx, activeLinkCountQuery, loginID, portalID, now.UnixMilli()).Scan(&n)
	return
}

// DeleteExpiredBefore removes links that expired before t.
func (lq *SecureLinkQuery) DeleteExpiredBefore(ctx context.Context, t time.Time) error {
	return lq.Exec(ctx, deleteOldLinksQuery, t.UnixMilli())
}
