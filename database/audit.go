package database

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	auditColumns     = `id, at, actor, login_id, portal_id, event, outcome, detail, prev_hash, hash`
	lastAuditQuery   = `SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1`
	insertAuditQuery = `
		INSERT INTO audit_log (at, actor, login_id, portal_id, event, outcome, detail, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id
	`
	listAuditQuery = `SELECT ` + auditColumns + ` FROM audit_log WHERE id>$1 ORDER BY id LIMIT $2`
	findAuditQuery = `
		SELECT ` + auditColumns + ` FROM audit_log
		WHERE login_id=$1 AND portal_id=$2 AND event=$3 ORDER BY id
	`
)

// GenesisHash is the previous hash of the first audit row.
var GenesisHash = hex.EncodeToString(make([]byte, sha256.Size))

// AuditEntry is one audited action: who (a Matrix user, "patient:<session>" or
// "system"), what, on which conversation, with which outcome. Never a body or a secret.
type AuditEntry struct {
	ID       int64
	At       time.Time
	Actor    string
	LoginID  string
	PortalID string
	Event    string
	Outcome  string
	Detail   string
	PrevHash string
	Hash     string
}

// ComputeHash is SHA-256 over the canonical JSON encoding of the entry's fields and the
// previous row's hash.
func (e *AuditEntry) ComputeHash() string {
	canonical, _ := json.Marshal([]any{e.PrevHash, e.At.UnixMilli(), e.Actor, e.LoginID, e.PortalID, e.Event, e.Outcome, e.Detail})
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// AuditQuery runs the audit_log table's statements. Rows are only ever appended.
type AuditQuery struct {
	*dbutil.QueryHelper[*AuditEntry]
	// appendLock keeps the chain linear within the process (one bridge process writes).
	appendLock sync.Mutex
}

// Scan reads one row.
func (e *AuditEntry) Scan(row dbutil.Scannable) (*AuditEntry, error) {
	var at int64
	err := row.Scan(&e.ID, &at, &e.Actor, &e.LoginID, &e.PortalID, &e.Event, &e.Outcome, &e.Detail, &e.PrevHash, &e.Hash)
	if err != nil {
		return nil, err
	}
	e.At = time.UnixMilli(at)
	return e, nil
}

// Append links an entry to the chain and stores it. Called inside a transaction, it is
// part of that transaction.
func (aq *AuditQuery) Append(ctx context.Context, e *AuditEntry) error {
	aq.appendLock.Lock()
	defer aq.appendLock.Unlock()
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = time.UnixMilli(e.At.UnixMilli())
	return aq.GetDB().DoTxn(ctx, nil, func(ctx context.Context) error {
		err := aq.GetDB().QueryRow(ctx, lastAuditQuery).Scan(&e.PrevHash)
		if errors.Is(err, sql.ErrNoRows) {
			e.PrevHash = GenesisHash
		} else if err != nil {
			return err
		}
		e.Hash = e.ComputeHash()
		return aq.GetDB().QueryRow(ctx, insertAuditQuery, e.At.UnixMilli(), e.Actor, e.LoginID, e.PortalID,
			e.Event, e.Outcome, e.Detail, e.PrevHash, e.Hash).Scan(&e.ID)
	})
}

// Find returns a conversation's entries of one event, oldest first.
func (aq *AuditQuery) Find(ctx context.Context, loginID, portalID, event string) ([]*AuditEntry, error) {
	return aq.QueryMany(ctx, findAuditQuery, loginID, portalID, event)
}

// ErrAuditChainBroken names the first row whose hash or link does not match.
var ErrAuditChainBroken = errors.New("audit log chain is broken")

// Verify walks the whole chain and returns ErrAuditChainBroken naming the first row that
// was changed, inserted or removed, and how many rows it checked.
func (aq *AuditQuery) Verify(ctx context.Context) (int, error) {
	prev, afterID, checked := GenesisHash, int64(0), 0
	for {
		rows, err := aq.QueryMany(ctx, listAuditQuery, afterID, 1000)
		if err != nil {
			return checked, err
		}
		for _, e := range rows {
			if e.PrevHash != prev || e.ComputeHash() != e.Hash {
				return checked, fmt.Errorf("%w at row %d (%s %s)", ErrAuditChainBroken, e.ID, e.Event, e.At.UTC().Format(time.RFC3339))
			}
			prev, afterID = e.Hash, e.ID
			checked++
		}
		if len(rows) < 1000 {
			return checked, nil
		}
	}
}
