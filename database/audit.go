package database

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
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
	// PostgreSQL only: held until the transaction ends, in every process.
	lockAuditQuery = `SELECT pg_advisory_xact_lock($1)`
	pageAuditQuery = `
		SELECT ` + auditColumns + ` FROM audit_log
		WHERE id>$1 AND at>=$2 AND at<$3 ORDER BY id LIMIT $4
	`
	countAuditQuery = `SELECT COUNT(*) FROM audit_log WHERE at>=$1 AND at<$2`
	findAuditQuery  = `
		SELECT ` + auditColumns + ` FROM audit_log
		WHERE login_id=$1 AND portal_id=$2 AND event=$3 ORDER BY id
	`
)

// auditAppendLock is the PostgreSQL advisory lock key that serialises appends ("careaudt").
const auditAppendLock int64 = 0x6361726561756474

// auditPageSize is how many rows Verify and Each read per query.
const auditPageSize = 2000

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

// ErrAuditFork means another writer appended after the same row; the unique index on
// prev_hash refused the entry rather than fork the chain.
var ErrAuditFork = errors.New("the audit entry was not written because another writer appended after the same row " +
	"(the chain would have forked): retry the action, and check that every process writing this database is " +
	"carebridge and that a SQLite database URI ends in ?_txlock=immediate")

// Append links an entry to the chain and stores it; an error means it was not stored.
// Called inside a transaction (dbutil's DoTxn reuses the one in ctx), it is part of that
// transaction. Appends are serialised across processes by the database: on PostgreSQL an
// advisory lock held until the transaction ends, on SQLite the write lock that BEGIN
// IMMEDIATE (the URI's _txlock=immediate) takes. The unique index on prev_hash backs both.
func (aq *AuditQuery) Append(ctx context.Context, e *AuditEntry) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = time.UnixMilli(e.At.UnixMilli())
	db := aq.GetDB()
	err := db.DoTxn(ctx, nil, func(ctx context.Context) error {
		if db.Dialect == dbutil.Postgres {
			if _, err := db.Exec(ctx, lockAuditQuery, auditAppendLock); err != nil {
				return fmt.Errorf("failed to take the audit log's append lock: %w", err)
			}
		}
		err := db.QueryRow(ctx, lastAuditQuery).Scan(&e.PrevHash)
		if errors.Is(err, sql.ErrNoRows) {
			e.PrevHash = GenesisHash
		} else if err != nil {
			return fmt.Errorf("failed to read the audit log's last hash: %w", err)
		}
		e.Hash = e.ComputeHash()
		err = db.QueryRow(ctx, insertAuditQuery, e.At.UnixMilli(), e.Actor, e.LoginID, e.PortalID,
			e.Event, e.Outcome, e.Detail, e.PrevHash, e.Hash).Scan(&e.ID)
		if isPrevHashConflict(err) {
			return fmt.Errorf("%w (%v)", ErrAuditFork, err)
		} else if err != nil {
			return fmt.Errorf("failed to insert the audit row: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to append %q to the audit log: %w", e.Event, err)
	}
	return nil
}

// isPrevHashConflict recognises the unique index on prev_hash firing, in either dialect:
// `duplicate key … "audit_log_prev_hash_idx"` and `UNIQUE constraint failed: audit_log.prev_hash`.
func isPrevHashConflict(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "prev_hash") && (strings.Contains(msg, "unique") || strings.Contains(msg, "duplicate"))
}

// Find returns a conversation's entries of one event, oldest first.
func (aq *AuditQuery) Find(ctx context.Context, loginID, portalID, event string) ([]*AuditEntry, error) {
	return aq.QueryMany(ctx, findAuditQuery, loginID, portalID, event)
}

// Count returns how many entries were written in [since, until); a zero until means no end.
func (aq *AuditQuery) Count(ctx context.Context, since, until time.Time) (n int, err error) {
	from, to := auditBounds(since, until)
	err = aq.GetDB().QueryRow(ctx, countAuditQuery, from, to).Scan(&n)
	return
}

// Each calls fn for every entry written in [since, until), oldest first, reading one page
// of rows at a time; a zero until means no end. It stops at fn's first error.
func (aq *AuditQuery) Each(ctx context.Context, since, until time.Time, fn func(*AuditEntry) error) error {
	from, to := auditBounds(since, until)
	return aq.walk(ctx, from, to, fn)
}

func auditBounds(since, until time.Time) (from, to int64) {
	from, to = since.UnixMilli(), int64(math.MaxInt64)
	if since.IsZero() {
		from = math.MinInt64
	}
	if !until.IsZero() {
		to = until.UnixMilli()
	}
	return
}

func (aq *AuditQuery) walk(ctx context.Context, from, to int64, fn func(*AuditEntry) error) error {
	afterID := int64(math.MinInt64)
	for {
		rows, err := aq.QueryMany(ctx, pageAuditQuery, afterID, from, to, auditPageSize)
		if err != nil {
			return fmt.Errorf("failed to read the audit log after row %d: %w", afterID, err)
		}
		for _, e := range rows {
			if err = fn(e); err != nil {
				return err
			}
			afterID = e.ID
		}
		if len(rows) < auditPageSize {
			return nil
		}
	}
}

// ErrAuditChainBroken is what every *AuditBreak matches with errors.Is.
var ErrAuditChainBroken = errors.New("audit log chain is broken")

// AuditBreak is the first place where the chain does not hold.
type AuditBreak struct {
	// ID is the first broken row: the changed or inserted row, or the row whose link
	// to the row before it (PrevID, 0 for the start of the log) is gone.
	ID      int64
	PrevID  int64
	Problem string
}

func (b *AuditBreak) Error() string { return ErrAuditChainBroken.Error() + ": " + b.Problem }

// Is makes errors.Is(err, ErrAuditChainBroken) hold.
func (b *AuditBreak) Is(target error) bool { return target == ErrAuditChainBroken }

// AuditHead sums up a verified chain. The chain cannot show rows cut from its end:
// compare Hash with the one an earlier verify or export reported.
type AuditHead struct {
	Rows   int
	LastID int64
	LastAt time.Time
	// Hash is the newest row's hash (GenesisHash when the log is empty).
	Hash string
}

// Verify walks the whole chain and returns how many rows it checked, or an *AuditBreak
// naming the first row that was changed, inserted or removed.
func (aq *AuditQuery) Verify(ctx context.Context) (int, error) {
	head, err := aq.VerifyChain(ctx)
	return head.Rows, err
}

// VerifyChain is Verify returning the chain's head as well. On a break, the head is the
// last row that was still intact.
func (aq *AuditQuery) VerifyChain(ctx context.Context) (AuditHead, error) {
	c := chainCheck{head: AuditHead{Hash: GenesisHash}}
	// Each row is judged with the row after it in hand: that tells an inserted row
	// from a changed one.
	var pending *AuditEntry
	err := aq.walk(ctx, math.MinInt64, math.MaxInt64, func(e *AuditEntry) error {
		if pending != nil {
			if err := c.check(pending, e); err != nil {
				return err
			}
		}
		pending = e
		return nil
	})
	if err == nil && pending != nil {
		err = c.check(pending, nil)
	}
	return c.head, err
}

// chainCheck holds the last two intact rows while Verify walks.
type chainCheck struct {
	head         AuditHead
	prev         *AuditEntry // nil at the start of the log
	prevPrevID   int64       // 0 for the start of the log
	prevPrevHash string
}

func (c *chainCheck) check(r, next *AuditEntry) error {
	selfOK := r.ComputeHash() == r.Hash
	linkOK := r.PrevHash == c.head.Hash
	switch {
	case linkOK && selfOK:
		c.prevPrevHash = c.head.Hash
		if c.prev != nil {
			c.prevPrevID = c.prev.ID
		}
		c.prev = r
		c.head = AuditHead{Rows: c.head.Rows + 1, LastID: r.ID, LastAt: r.At, Hash: r.Hash}
		return nil
	case next != nil && next.PrevHash == c.head.Hash:
		// The next row links straight to the row before r.
		return c.broken(r, fmt.Sprintf("row %d was inserted between %s and row %d (%s), which link to each other",
			r.ID, c.prevName(), next.ID, describeAudit(r)))
	case c.prev != nil && r.PrevHash == c.prevPrevHash:
		// r links straight past the previous row, which therefore was inserted.
		ins, before := c.prev, "the start of the log"
		if c.prevPrevID != 0 {
			before = fmt.Sprintf("row %d", c.prevPrevID)
		}
		return &AuditBreak{ID: ins.ID, PrevID: c.prevPrevID, Problem: fmt.Sprintf(
			"row %d was inserted between %s and row %d (%s), which link to each other", ins.ID, before, r.ID, describeAudit(ins))}
	case linkOK || (!selfOK && (next == nil || next.PrevHash == r.Hash)):
		// Its stored hash still holds the chain together: its content was edited.
		return c.broken(r, fmt.Sprintf("row %d was changed after it was written (%s): its content no longer matches its hash",
			r.ID, describeAudit(r)))
	default:
		return c.broken(r, fmt.Sprintf("row %d does not link to %s: a row between them was deleted%s, "+
			"or row %d was inserted, or %s was rewritten with a recomputed hash",
			r.ID, c.prevName(), c.gap(r), r.ID, c.prevName()))
	}
}

func (c *chainCheck) broken(r *AuditEntry, problem string) *AuditBreak {
	b := &AuditBreak{ID: r.ID, Problem: problem}
	if c.prev != nil {
		b.PrevID = c.prev.ID
	}
	return b
}

func (c *chainCheck) prevName() string {
	if c.prev == nil {
		return "the start of the log"
	}
	return fmt.Sprintf("row %d", c.prev.ID)
}

// gap names the ids missing between the previous row and r; rolled-back appends leave
// such gaps on PostgreSQL too, so it is only a hint.
func (c *chainCheck) gap(r *AuditEntry) string {
	from := int64(1)
	if c.prev != nil {
		from = c.prev.ID + 1
	}
	switch to := r.ID - 1; {
	case to < from:
		return ""
	case to == from:
		return fmt.Sprintf(" (no row has id %d)", from)
	default:
		return fmt.Sprintf(" (no rows have ids %d to %d)", from, to)
	}
}

func describeAudit(e *AuditEntry) string {
	return fmt.Sprintf("%q at %s", e.Event, e.At.UTC().Format(time.RFC3339))
}

// Audited runs a change and its audit event in one transaction: when the event cannot be
// written, the change does not happen either. change may be nil for an event alone.
func (db *Database) Audited(ctx context.Context, entry *AuditEntry, change func(ctx context.Context) error) error {
	return db.DoTxn(ctx, nil, func(ctx context.Context) error {
		if change != nil {
			if err := change(ctx); err != nil {
				return err
			}
		}
		if err := db.Audit.Append(ctx, entry); err != nil {
			return fmt.Errorf("failed to write the audit log (%s): %w", entry.Event, err)
		}
		return nil
	})
}
