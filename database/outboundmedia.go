package database

import (
	"context"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	outboundMediaColumns     = `token_hash, content_type, file_name, size, mxc, file_info, expires_at`
	insertOutboundMediaQuery = `INSERT INTO outbound_media (` + outboundMediaColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	getOutboundMediaQuery    = `SELECT ` + outboundMediaColumns + ` FROM outbound_media WHERE token_hash=$1 AND expires_at>$2`
	deleteExpiredMediaQuery  = `DELETE FROM outbound_media WHERE expires_at<=$1`
)

// OutboundMedia is an attachment staff sent by MMS, reachable by Twilio until ExpiresAt.
type OutboundMedia struct {
	TokenHash   string // SHA-256 of the URL token, hex
	ContentType string
	FileName    string
	Size        int64
	MXC         string
	FileInfo    string // encrypted file info JSON, or ""
	ExpiresAt   time.Time
}

// OutboundMediaQuery runs the outbound_media table's statements.
type OutboundMediaQuery struct {
	*dbutil.QueryHelper[*OutboundMedia]
}

// Scan reads one row.
func (m *OutboundMedia) Scan(row dbutil.Scannable) (*OutboundMedia, error) {
	var expiresAt int64
	err := row.Scan(&m.TokenHash, &m.ContentType, &m.FileName, &m.Size, &m.MXC, &m.FileInfo, &expiresAt)
	if err != nil {
		return nil, err
	}
	m.ExpiresAt = time.UnixMilli(expiresAt)
	return m, nil
}

// Insert stores an attachment's URL token hash and where the file is.
func (mq *OutboundMediaQuery) Insert(ctx context.Context, m *OutboundMedia) error {
	return mq.Exec(ctx, insertOutboundMediaQuery, m.TokenHash, m.ContentType, m.FileName, m.Size, m.MXC,
		m.FileInfo, m.ExpiresAt.UnixMilli())
}

// GetValid returns the attachment for a token hash unless it expired, or nil.
func (mq *OutboundMediaQuery) GetValid(ctx context.Context, tokenHash string, now time.Time) (*OutboundMedia, error) {
	return mq.QueryOne(ctx, getOutboundMediaQuery, tokenHash, now.UnixMilli())
}

// DeleteExpired forgets attachments whose URL expired.
func (mq *OutboundMediaQuery) DeleteExpired(ctx context.Context, now time.Time) error {
	return mq.Exec(ctx, deleteExpiredMediaQuery, now.UnixMilli())
}
