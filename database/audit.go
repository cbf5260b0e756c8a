package database

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	auditColumns     = `id, at, actor, login_id, portal_id, event, outcome, detail, prev_hash, hash, mac_key`
	lastAuditQuery   = `SELECT hash, mac_key FROM audit_log ORDER BY id DESC LIMIT 1`
	insertAuditQuery = `
		INSERT INTO audit_log (at, actor, login_id, portal_id, event, outcome, detail, prev_hash, hash, mac_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id
	`
	// The smallest value counts: rows of audit_chain are only ever added.
	unkeyedUntilQuery = `SELECT MIN(unkeyed_until) FROM audit_chain`
	macKeyCountsQuery = `SELECT mac_key, COUNT(*) FROM audit_log GROUP BY mac_key`
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

// AuditKeys makes the keyed hashes of the audit chain. The secure chat key ring
// (securechat.Keyring) implements it; database/ cannot import it, so whoever opens the
// database to write or verify audit rows passes it to AuditQuery.SetKeys.
type AuditKeys interface {
	// Current is the ID of the key new rows are made with; called on every append.
	Current() string
	// AuditMAC is the HMAC-SHA256 of data under the audit key derived from the key id;
	// ok is false when the ring has no such key. Called for every row appended or verified.
	AuditMAC(id string, data []byte) (mac []byte, ok bool)
}

// AuditEntry is one audited action: who (auditvocab.go), what, on which conversation,
// with which outcome. Never a body or a secret.
type AuditEntry struct {
	ID       int64
	At       time.Time
	Actor    AuditActor
	LoginID  string
	PortalID string
	Event    AuditEvent
	Outcome  AuditOutcome
	Detail   string
	PrevHash string
	Hash     string
	// MACKey is the ID of the key ring's key whose audit key made Hash (an HMAC); empty
	// for rows written before the chain was keyed (schema v10), whose Hash is ComputeHash.
	MACKey string
}

// ComputeHash is the unkeyed hash of rows written before the chain was keyed: SHA-256
// over the canonical JSON encoding of the entry's fields and the previous row's hash.
// Anyone can recompute it, which is why later rows are keyed (ComputeMAC).
func (e *AuditEntry) ComputeHash() string {
	canonical, _ := json.Marshal([]any{e.PrevHash, e.At.UnixMilli(), e.Actor.String(), e.LoginID, e.PortalID, e.Event, e.Outcome, e.Detail})
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// ComputeMAC is the keyed hash of the entry under the audit key of e.MACKey: HMAC-SHA256
// over the canonical JSON encoding of its fields, the previous row's hash and the key's
// ID. ok is false when keys does not have that key.
func (e *AuditEntry) ComputeMAC(keys AuditKeys) (mac string, ok bool) {
	canonical, _ := json.Marshal([]any{"carebridge audit v10", e.PrevHash, e.At.UnixMilli(), e.Actor.String(), e.LoginID,
		e.PortalID, e.Event, e.Outcome, e.Detail, e.MACKey})
	sum, ok := keys.AuditMAC(e.MACKey, canonical)
	if !ok {
		return "", false
	}
	return hex.EncodeToString(sum), true
}

// AuditQuery runs the audit_log table's statements. Rows are only ever appended (the
// database's triggers refuse UPDATE and DELETE).
type AuditQuery struct {
	*dbutil.QueryHelper[*AuditEntry]
	keys     atomic.Pointer[auditKeyRing]
	required atomic.Bool
}

type auditKeyRing struct{ AuditKeys }

// SetKeys gives the audit log the key ring that makes and checks its keyed hashes: from
// then on every appended row is keyed with its current key. The bridge calls it once the
// ring is built, the subcommands when they open the database.
func (aq *AuditQuery) SetKeys(keys AuditKeys) {
	aq.keys.Store(&auditKeyRing{keys})
}

// RequireKeys makes Append refuse rows until SetKeys has been called, so a process that
// writes the real log never writes an unkeyed row while its key ring is still being built.
// Without it (tests), a database without keys writes unkeyed rows while the chain has no
// keyed row yet.
func (aq *AuditQuery) RequireKeys() {
	aq.required.Store(true)
}

func (aq *AuditQuery) keyRing() AuditKeys {
	if ring := aq.keys.Load(); ring != nil {
		return ring.AuditKeys
	}
	return nil
}

// ErrAuditNoKey means an audit row was not written because the audit log has no key.
var ErrAuditNoKey = errors.New("the audit log has no key to write with: the secure chat key ring is not loaded")

// Scan reads one row.
func (e *AuditEntry) Scan(row dbutil.Scannable) (*AuditEntry, error) {
	var at int64
	err := row.Scan(&e.ID, &at, &e.Actor, &e.LoginID, &e.PortalID, &e.Event, &e.Outcome, &e.Detail, &e.PrevHash, &e.Hash, &e.MACKey)
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
// The row is keyed with the current key of the ring given to SetKeys.
func (aq *AuditQuery) Append(ctx context.Context, e *AuditEntry) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = time.UnixMilli(e.At.UnixMilli())
	keys := aq.keyRing()
	if keys == nil && aq.required.Load() {
		return fmt.Errorf("failed to append %q to the audit log: %w", e.Event, ErrAuditNoKey)
	}
	db := aq.GetDB()
	err := db.DoTxn(ctx, nil, func(ctx context.Context) error {
		if db.Dialect == dbutil.Postgres {
			if _, err := db.Exec(ctx, lockAuditQuery, auditAppendLock); err != nil {
				return fmt.Errorf("failed to take the audit log's append lock: %w", err)
			}
		}
		var lastKey string
		err := db.QueryRow(ctx, lastAuditQuery).Scan(&e.PrevHash, &lastKey)
		if errors.Is(err, sql.ErrNoRows) {
			e.PrevHash = GenesisHash
		} else if err != nil {
			return fmt.Errorf("failed to read the audit log's last hash: %w", err)
		}
		if keys == nil {
			if lastKey != "" {
				return ErrAuditNoKey // an unkeyed row after a keyed one would break the chain
			}
			e.MACKey, e.Hash = "", e.ComputeHash()
		} else {
			e.MACKey = keys.Current()
			var ok bool
			if e.Hash, ok = e.ComputeMAC(keys); !ok {
				return fmt.Errorf("the key ring has no key %q to write with", e.MACKey)
			}
		}
		err = db.QueryRow(ctx, insertAuditQuery, e.At.UnixMilli(), e.Actor, e.LoginID, e.PortalID,
			e.Event, e.Outcome, e.Detail, e.PrevHash, e.Hash, e.MACKey).Scan(&e.ID)
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
func (aq *AuditQuery) Find(ctx context.Context, loginID, portalID string, event AuditEvent) ([]*AuditEntry, error) {
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
	// to the row before it (PrevID, 0 for the start of the log) is gone. For a head kept
	// outside the database that the log no longer matches (Anchor), it is that head's row.
	ID      int64
	PrevID  int64
	Problem string
	// Anchor is set when the chain holds but does not contain a head kept outside it.
	Anchor bool
}

func (b *AuditBreak) Error() string { return ErrAuditChainBroken.Error() + ": " + b.Problem }

// Is makes errors.Is(err, ErrAuditChainBroken) hold.
func (b *AuditBreak) Is(target error) bool { return target == ErrAuditChainBroken }

// AuditHead sums up a verified chain. The chain cannot show rows cut from its end, nor a
// history rewritten by someone holding the key: keep Anchor() outside the database and
// pass it back to VerifyChain.
type AuditHead struct {
	Rows   int
	LastID int64
	LastAt time.Time
	// Hash is the newest row's hash (GenesisHash when the log is empty).
	Hash string
	// Unkeyed counts the rows written before the chain was keyed.
	Unkeyed int
}

// Anchor is the head as kept outside the database: the newest row's id and hash.
func (h AuditHead) Anchor() AuditAnchor {
	return AuditAnchor{ID: h.LastID, Hash: h.Hash}
}

// AuditAnchor names one row of the chain by id and hash, as `carebridge audit head`
// prints it ("ID:HASH"); ID 0 with GenesisHash is the empty log.
type AuditAnchor struct {
	ID   int64
	Hash string
}

func (a AuditAnchor) String() string { return strconv.FormatInt(a.ID, 10) + ":" + a.Hash }

// ParseAuditAnchor reads "ID:HASH" as `carebridge audit head` prints it.
func ParseAuditAnchor(s string) (AuditAnchor, error) {
	idPart, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return AuditAnchor{}, fmt.Errorf("%q is not ID:HASH as `carebridge audit head` prints it", s)
	}
	id, err := strconv.ParseInt(idPart, 10, 64)
	if err != nil || id < 0 || (idPart != "0" && strings.HasPrefix(idPart, "0")) || strings.HasPrefix(idPart, "+") {
		return AuditAnchor{}, fmt.Errorf("%q does not start with a row id (a whole number) before the colon", s)
	}
	if raw, err := hex.DecodeString(hash); err != nil || len(raw) != sha256.Size || strings.ToLower(hash) != hash {
		return AuditAnchor{}, fmt.Errorf("%q does not end with a hash of 64 lower-case hex digits after the colon", s)
	}
	if id == 0 && hash != GenesisHash {
		return AuditAnchor{}, fmt.Errorf("%q names row 0, the empty log, whose hash is %s", s, GenesisHash)
	}
	return AuditAnchor{ID: id, Hash: hash}, nil
}

// Verify walks the whole chain and returns how many rows it checked, or an *AuditBreak
// naming the first row that was changed, inserted or removed.
func (aq *AuditQuery) Verify(ctx context.Context) (int, error) {
	head, err := aq.VerifyChain(ctx)
	return head.Rows, err
}

// VerifyChain is Verify returning the chain's head as well, and checking that the chain
// still holds each head kept earlier (expect): a row cut from the end or a history
// rewritten before it is an *AuditBreak with Anchor set. On a break, the head is the last
// row that was still intact. Keyed rows are checked with the ring given to SetKeys, and
// without one they cannot be: that is an error, not a break.
func (aq *AuditQuery) VerifyChain(ctx context.Context, expect ...AuditAnchor) (AuditHead, error) {
	c := chainCheck{head: AuditHead{Hash: GenesisHash}, keys: aq.keyRing(), unkeyedUntil: -1}
	if c.keys != nil {
		var until sql.NullInt64
		if err := aq.GetDB().QueryRow(ctx, unkeyedUntilQuery).Scan(&until); err != nil {
			return c.head, fmt.Errorf("failed to read where the audit chain became keyed: %w", err)
		} else if !until.Valid {
			return c.head, &AuditBreak{Problem: "the record of where the chain became keyed (table audit_chain) is gone: " +
				"it was deleted, so unkeyed rows cannot be told from rows rewritten without the key"}
		}
		c.unkeyedUntil = until.Int64
	}
	anchors := make(map[int64]string, len(expect))
	for _, a := range expect {
		anchors[a.ID] = a.Hash
	}
	seen := make(map[int64]string, len(expect))
	if _, ok := anchors[0]; ok {
		seen[0] = GenesisHash
	}
	// Each row is judged with the row after it in hand: that tells an inserted row
	// from a changed one.
	var pending *AuditEntry
	check := func(r, next *AuditEntry) error {
		if err := c.check(r, next); err != nil {
			return err
		}
		if _, ok := anchors[r.ID]; ok {
			seen[r.ID] = r.Hash
		}
		return nil
	}
	err := aq.walk(ctx, math.MinInt64, math.MaxInt64, func(e *AuditEntry) error {
		if pending != nil {
			if err := check(pending, e); err != nil {
				return err
			}
		}
		pending = e
		return nil
	})
	if err == nil && pending != nil {
		err = check(pending, nil)
	}
	if err != nil {
		return c.head, err
	}
	for _, a := range expect {
		if err = c.checkAnchor(a, seen); err != nil {
			return c.head, err
		}
	}
	return c.head, nil
}

// chainCheck holds the last two intact rows while Verify walks.
type chainCheck struct {
	head         AuditHead
	prev         *AuditEntry // nil at the start of the log
	prevPrevID   int64       // 0 for the start of the log
	prevPrevHash string
	// keys checks keyed rows; nil when none was given (keyed rows then cannot be checked).
	keys AuditKeys
	// unkeyedUntil is the last row written before the chain was keyed; -1 without keys.
	unkeyedUntil int64
}

// hashOK reports whether r's stored hash is the one its content makes.
func (c *chainCheck) hashOK(r *AuditEntry) bool {
	if r.MACKey == "" {
		return r.ComputeHash() == r.Hash
	}
	mac, _ := r.ComputeMAC(c.keys)
	return hmac.Equal([]byte(mac), []byte(r.Hash))
}

// checkKey refuses a row that no key can vouch for: one without a MAC where every row
// must have one, or one naming a key the ring does not have.
func (c *chainCheck) checkKey(r *AuditEntry) error {
	switch {
	case r.MACKey == "" && c.unkeyedUntil >= 0 && r.ID > c.unkeyedUntil:
		keyedAfter := "the start of the log"
		if c.unkeyedUntil > 0 {
			keyedAfter = fmt.Sprintf("row %d", c.unkeyedUntil)
		}
		return c.broken(r, fmt.Sprintf("row %d has no MAC, but every row after %s is keyed: it was written or rewritten "+
			"without the audit key (%s)", r.ID, keyedAfter, describeAudit(r)))
	case r.MACKey != "" && c.keys == nil:
		return fmt.Errorf("row %d is keyed with %q, and no key ring was given to check it", r.ID, r.MACKey)
	case r.MACKey != "":
		if _, ok := r.ComputeMAC(c.keys); !ok {
			return c.broken(r, fmt.Sprintf("row %d names the key %q, which is not in the key ring (network.secure_chat.keys): "+
				"put the key back if it was removed, otherwise the row was forged (%s)", r.ID, r.MACKey, describeAudit(r)))
		}
	}
	return nil
}

func (c *chainCheck) check(r, next *AuditEntry) error {
	if err := c.checkKey(r); err != nil {
		return err
	}
	selfOK := c.hashOK(r)
	linkOK := r.PrevHash == c.head.Hash
	switch {
	case linkOK && selfOK:
		c.prevPrevHash = c.head.Hash
		if c.prev != nil {
			c.prevPrevID = c.prev.ID
		}
		c.prev = r
		unkeyed := c.head.Unkeyed
		if r.MACKey == "" {
			unkeyed++
		}
		c.head = AuditHead{Rows: c.head.Rows + 1, LastID: r.ID, LastAt: r.At, Hash: r.Hash, Unkeyed: unkeyed}
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

// checkAnchor compares a head kept outside the database with the verified chain.
func (c *chainCheck) checkAnchor(a AuditAnchor, seen map[int64]string) error {
	kept := a.String()
	hash, ok := seen[a.ID]
	switch {
	case ok && hash == a.Hash:
		return nil
	case ok:
		return &AuditBreak{ID: a.ID, Anchor: true, Problem: fmt.Sprintf("row %d's hash is %s, not the %s kept as head %s: "+
			"the log up to row %d was rewritten", a.ID, hash, a.Hash, kept, a.ID)}
	case a.ID > c.head.LastID:
		return &AuditBreak{ID: a.ID, Anchor: true, Problem: fmt.Sprintf("the kept head %s names row %d, but the log ends "+
			"at row %d: rows were cut from its end", kept, a.ID, c.head.LastID)}
	default:
		return &AuditBreak{ID: a.ID, Anchor: true, Problem: fmt.Sprintf("the kept head %s names row %d, which is no "+
			"longer in the log: the log up to it was rewritten", kept, a.ID)}
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

// MACKeyCounts counts the audit rows made with each key (the empty ID for unkeyed rows): a key
// that made rows must stay in the ring for them to verify.
func (aq *AuditQuery) MACKeyCounts(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{}
	return counts, addKeyCounts(ctx, aq.GetDB(), counts, macKeyCountsQuery)
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
