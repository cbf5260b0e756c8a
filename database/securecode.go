package database

import (
	"context"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	secureCodeColumns     = `link_hash, patient_phone, code_hash, created_at, expires_at, used_at`
	insertSecureCodeQuery = `INSERT INTO secure_code (` + secureCodeColumns + `) VALUES ($1, $2, $3, $4, $5, 0)`
	// The newest code of a link is the only one that counts: sending a code replaces the last.
	latestSecureCodeQuery = `SELECT ` + secureCodeColumns + ` FROM secure_code WHERE link_hash=$1 ORDER BY created_at DESC LIMIT 1`
	// useCodeQuery marks a code used unless it already was: a replayed code fails.
	useCodeQuery           = `UPDATE secure_code SET used_at=$3 WHERE link_hash=$1 AND code_hash=$2 AND used_at=0`
	countCodesByLinkQuery  = `SELECT COUNT(*) FROM secure_code WHERE link_hash=$1 AND created_at>$2`
	countCodesByPhoneQuery = `SELECT COUNT(*) FROM secure_code WHERE patient_phone=$1 AND created_at>$2`
	deleteOldCodesQuery    = `DELETE FROM secure_code WHERE expires_at<=$1`
)

// SecureCode is a one-time code texted for a link; only its keyed hash is kept.
type SecureCode struct {
	LinkHash     string
	PatientPhone string
	CodeHash     string
	CreatedAt    time.Time
	ExpiresAt    time.Time
	UsedAt       time.Time // zero while unused
}

// SecureCodeQuery runs the secure_code table's statements.
type SecureCodeQuery struct {
	*dbutil.QueryHelper[*SecureCode]
}

// Scan reads one row.
func (c *SecureCode) Scan(row dbutil.Scannable) (*SecureCode, error) {
	var created, expires, used int64
	err := row.Scan(&c.LinkHash, &c.PatientPhone, &c.CodeHash, &created, &expires, &used)
	if err != nil {
		return nil, err
	}
	c.CreatedAt, c.ExpiresAt, c.UsedAt = time.UnixMilli(created), time.UnixMilli(expires), unixMilliOrZero(used)
	return c, nil
}

// Insert stores a new code.
func (cq *SecureCodeQuery) Insert(ctx context.Context, c *SecureCode) error {
	return cq.Exec(ctx, insertSecureCodeQuery, c.LinkHash, c.PatientPhone, c.CodeHash, c.CreatedAt.UnixMilli(), c.ExpiresAt.UnixMilli())
}

// Latest returns the newest code of a link, or nil.
func (cq *SecureCodeQuery) Latest(ctx context.Context, linkHash string) (*SecureCode, error) {
	return cq.QueryOne(ctx, latestSecureCodeQuery, linkHash)
}

// Use marks a code used; false means it was already used (a replay).
func (cq *SecureCodeQuery) Use(ctx context.Context, linkHash, codeHash string, at time.Time) (bool, error) {
	res, err := cq.GetDB().Exec(ctx, useCodeQuery, linkHash, codeHash, at.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// CountSince counts codes sent for a link, and to a number, since t (rate limits).
func (cq *SecureCodeQuery) CountSince(ctx context.Context, linkHash, phone string, t time.Time) (byLink, byPhone int, err error) {
	if err = cq.GetDB().QueryRow(ctx, countCodesByLinkQuery, linkHash, t.UnixMilli()).Scan(&byLink); err != nil {
		return
	}
	err = cq.GetDB().QueryRow(ctx, countCodesByPhoneQuery, phone, t.UnixMilli()).Scan(&byPhone)
	return
}

// DeleteExpiredBefore removes codes that expired before t.
func (cq *SecureCodeQuery) DeleteExpiredBefore(ctx context.Context, t time.Time) error {
	return cq.Exec(ctx, deleteOldCodesQuery, t.UnixMilli())
}
