package admin

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/term"

	"github.com/carebridge/carebridge/database"
)

// `carebridge audit verify` checks the audit log's hash chain; `carebridge audit export`
// writes its rows for an auditor; `carebridge audit head` prints the newest row as ID:HASH.
// The keyed chain shows a changed, inserted or deleted row, but not rows cut from its end,
// nor a history rewritten by someone who also holds the key: keep the heads outside the
// database (a write-once log) and pass one back with `audit verify --expect ID:HASH`.

// Exit codes: 0 done, 1 the chain is broken or the export failed, 2 wrong arguments,
// config or database.
const (
	exitFailed = 1
	exitUsage  = 2
)

// auditTimeLayout is RFC 3339 in UTC with the milliseconds the hash covers.
const auditTimeLayout = "2006-01-02T15:04:05.000Z07:00"

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runVerbs(ctx, "audit", map[string]runFunc{"verify": auditVerify, "head": auditHead, "export": auditExport},
		auditUsage, args, stdout, stderr)
}

func auditUsage(w io.Writer) {
	fmt.Fprintln(w, `usage:
  carebridge audit verify -c config.yaml [--expect ID:HASH]...
      check every row of the audit log's hash chain; exit 1 naming the first broken row,
      or when the log does not hold a head printed earlier by audit head
  carebridge audit head -c config.yaml
      verify the chain and print its newest row as ID:HASH, to keep outside the database
  carebridge audit export -c config.yaml --since 2026-01-01 [--until 2026-02-01] [--format jsonl|csv] [--output FILE]
      write the rows from --since up to (not including) --until, oldest first`)
}

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, path := toolFlags("audit verify", stderr)
	var expect []database.AuditAnchor
	fs.Func("expect", "a head printed earlier by `carebridge audit head` (ID:HASH) that the log must still hold; repeatable",
		func(value string) error {
			anchor, err := database.ParseAuditAnchor(value)
			if err == nil {
				expect = append(expect, anchor)
			}
			return err
		})
	if code, ok := parseToolArgs(fs, args, stderr); !ok {
		return code
	}
	head, code := verifyAuditChain(ctx, *path, "audit verify", expect, stderr)
	if code != 0 {
		return code
	}
	if head.Rows == 0 {
		fmt.Fprintln(stdout, "audit log intact: 0 rows (empty)")
	} else {
		fmt.Fprintf(stdout, "audit log intact: %s, newest row %d at %s, head hash %s\n",
			auditRowCount(head.Rows), head.LastID, head.LastAt.UTC().Format(time.RFC3339), head.Hash)
	}
	if head.Unkeyed > 0 {
		fmt.Fprintf(stdout, "%s written before the chain was keyed (plain SHA-256); every later row is keyed.\n",
			auditRowCount(head.Unkeyed))
	}
	for _, a := range expect {
		fmt.Fprintf(stdout, "The log holds the kept head %s.\n", a)
	}
	if len(expect) == 0 && head.Rows > 0 {
		fmt.Fprintln(stdout, "Rows cut from the end, or a history rewritten with the key, leave an intact chain: "+
			"keep `carebridge audit head` outside the database and pass it back with --expect ID:HASH.")
	}
	return 0
}

// auditHead prints the newest row of a verified chain as ID:HASH (0:GenesisHash for an
// empty log), alone on stdout, for a cron job to append to a write-once log.
func auditHead(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, path := toolFlags("audit head", stderr)
	if code, ok := parseToolArgs(fs, args, stderr); !ok {
		return code
	}
	head, code := verifyAuditChain(ctx, *path, "audit head", nil, stderr)
	if code != 0 {
		return code
	}
	fmt.Fprintln(stdout, head.Anchor())
	return 0
}

// verifyAuditChain opens the database of the config at path, verifies the chain (and the
// kept heads) and explains a failure on stderr; code is the exit code, 0 when the chain holds.
func verifyAuditChain(ctx context.Context, path, name string, expect []database.AuditAnchor, stderr io.Writer) (database.AuditHead, int) {
	env, err := openTool(ctx, path, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "carebridge %s: %v\n", name, err)
		return database.AuditHead{}, exitUsage
	}
	defer env.Close()
	head, err := env.DB.Audit.VerifyChain(ctx, expect...)
	var br *database.AuditBreak
	switch {
	case errors.As(err, &br) && br.Anchor:
		fmt.Fprintln(stderr, err)
		fmt.Fprintf(stderr, "The chain itself holds (%s, up to row %d), so it was rewritten or cut by someone who could "+
			"write the database.\n", auditRowCount(head.Rows), head.LastID)
		fmt.Fprintln(stderr, "Keep this database as evidence, compare it with your exports, and restore the audit log from a backup.")
		return head, exitFailed
	case errors.Is(err, database.ErrAuditChainBroken):
		fmt.Fprintln(stderr, err)
		if head.Rows > 0 {
			fmt.Fprintf(stderr, "Intact before it: %s, up to row %d.\n", auditRowCount(head.Rows), head.LastID)
		}
		fmt.Fprintln(stderr, "Keep this database as evidence, compare it with your latest export, and restore the audit log from a backup.")
		return head, exitFailed
	case err != nil:
		fmt.Fprintf(stderr, "carebridge %s: %v\n", name, err)
		return head, exitUsage
	}
	return head, 0
}

// AuditRecord is one row as `carebridge audit export` writes it (JSON lines; CSV in this
// order), and as tests read the export back.
type AuditRecord struct {
	ID       int64  `json:"id"`
	Time     string `json:"time"`
	Actor    string `json:"actor"`
	LoginID  string `json:"login_id"`
	PortalID string `json:"portal_id"`
	Event    string `json:"event"`
	Outcome  string `json:"outcome"`
	Detail   string `json:"detail"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
	MACKey   string `json:"mac_key"`
}

var auditCSVHeader = []string{"id", "time", "actor", "login_id", "portal_id", "event", "outcome", "detail", "prev_hash", "hash", "mac_key"}

func newAuditRecord(e *database.AuditEntry) AuditRecord {
	return AuditRecord{ID: e.ID, Time: e.At.UTC().Format(auditTimeLayout), Actor: e.Actor.String(), LoginID: e.LoginID,
		PortalID: e.PortalID, Event: string(e.Event), Outcome: string(e.Outcome), Detail: e.Detail, PrevHash: e.PrevHash, Hash: e.Hash, MACKey: e.MACKey}
}

// Fields is the row as a CSV record, in the columns of auditCSVHeader.
func (r AuditRecord) Fields() []string {
	return []string{strconv.FormatInt(r.ID, 10), r.Time, r.Actor, r.LoginID, r.PortalID, r.Event, r.Outcome, r.Detail, r.PrevHash, r.Hash, r.MACKey}
}

// auditEncoder writes rows in one format; finish flushes.
type auditEncoder interface {
	write(r AuditRecord) error
	finish() error
}

type jsonlEncoder struct{ enc *json.Encoder }

func (j jsonlEncoder) write(r AuditRecord) error { return j.enc.Encode(r) }
func (j jsonlEncoder) finish() error             { return nil }

type csvEncoder struct{ w *csv.Writer }

func (c csvEncoder) write(r AuditRecord) error { return c.w.Write(r.Fields()) }
func (c csvEncoder) finish() error {
	c.w.Flush()
	return c.w.Error()
}

func newAuditEncoder(format string, w io.Writer) (auditEncoder, error) {
	switch format {
	case "jsonl":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return jsonlEncoder{enc}, nil
	case "csv":
		c := csvEncoder{csv.NewWriter(w)}
		return c, c.w.Write(auditCSVHeader)
	}
	return nil, fmt.Errorf("--format %q is not supported: use jsonl or csv", format)
}

// parseAuditBound reads --since/--until: a date (midnight UTC) or an RFC 3339 time.
func parseAuditBound(name, value string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, value); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, value); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--%s %q is not a date: write it as 2026-01-31 (midnight UTC) or 2026-01-31T08:00:00Z", name, value)
}

// formatAuditBound writes a bound back the way it was most likely given, fractions of a
// second included: the audit row records the very instant exported.
func formatAuditBound(t time.Time) string {
	if t.Equal(t.UTC().Truncate(24 * time.Hour)) {
		return t.UTC().Format(time.DateOnly)
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, path := toolFlags("audit export", stderr)
	sinceArg := fs.String("since", "", "export rows written from this date on (2026-01-01, UTC, or an RFC 3339 time); required")
	untilArg := fs.String("until", "", "export rows written before this date (not included); default: up to now")
	format := fs.String("format", "jsonl", "jsonl or csv")
	output := fs.String("output", "", "write to this new file (default: standard output)")
	if code, ok := parseToolArgs(fs, args, stderr); !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "carebridge audit export:", err)
		return exitUsage
	}
	if *sinceArg == "" {
		return fail(errors.New("--since is required, e.g. --since 2026-01-01"))
	}
	since, err := parseAuditBound("since", *sinceArg)
	if err != nil {
		return fail(err)
	}
	var until time.Time
	if *untilArg != "" {
		if until, err = parseAuditBound("until", *untilArg); err != nil {
			return fail(err)
		}
		if !until.After(since) {
			return fail(fmt.Errorf("--until %s is not after --since %s: nothing to export", *untilArg, *sinceArg))
		}
	}
	if *format != "jsonl" && *format != "csv" {
		return fail(fmt.Errorf("--format %q is not supported: use jsonl or csv", *format))
	}

	env, err := openTool(ctx, *path, stderr)
	if err != nil {
		return fail(err)
	}
	defer env.Close()

	out, closeOut := stdout, func(ok bool) error { return nil }
	if *output != "" {
		f, err := os.OpenFile(*output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return fail(fmt.Errorf("%s already exists: choose another --output, or move the earlier export away", *output))
		} else if err != nil {
			return fail(fmt.Errorf("failed to create the output file: %w", err))
		}
		out = f
		closeOut = func(ok bool) error {
			err := f.Close()
			if !ok {
				_ = os.Remove(*output)
			}
			return err
		}
	}
	n, err := writeAuditExport(ctx, env.DB.Audit, since, until, *format, out, stderr)
	if err == nil {
		err = closeOut(true)
	} else {
		_ = closeOut(false)
	}
	if err != nil {
		fmt.Fprintln(stderr, "carebridge audit export: the export failed:", err)
		return exitFailed
	}

	detail := fmt.Sprintf("%s since %s", *format, formatAuditBound(since))
	if !until.IsZero() {
		detail += " until " + formatAuditBound(until)
	}
	detail += ", " + auditRowCount(n)
	event := &database.AuditEntry{Actor: database.CLIActor(cliUserName()), Event: database.EventAuditExported, Outcome: database.OutcomeOK, Detail: detail}
	if err = env.DB.Audit.Append(ctx, event); err != nil {
		fmt.Fprintln(stderr, "carebridge audit export: the rows were written, but the export could not be recorded in the audit log:", err)
		return exitFailed
	}
	fmt.Fprintf(stderr, "Exported %s (%s); recorded as audit row %d.\n", auditRowCount(n), *format, event.ID)
	return 0
}

// writeAuditExport streams the rows page by page, with a progress line when stderr is a
// terminal.
func writeAuditExport(ctx context.Context, aq *database.AuditQuery, since, until time.Time, format string, out, stderr io.Writer) (int, error) {
	buf := bufio.NewWriterSize(out, 64*1024)
	enc, err := newAuditEncoder(format, buf)
	if err != nil {
		return 0, err
	}
	var progress *rowProgress
	if isTerminalWriter(stderr) {
		total, err := aq.Count(ctx, since, until)
		if err != nil {
			return 0, err
		}
		progress = newRowProgress(stderr, "Exporting audit log", total, time.Now)
		defer progress.finish()
	}
	n := 0
	err = aq.Each(ctx, since, until, func(e *database.AuditEntry) error {
		if err := enc.write(newAuditRecord(e)); err != nil {
			return fmt.Errorf("failed to write row %d: %w", e.ID, err)
		}
		n++
		if progress != nil {
			progress.add(1)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if err = enc.finish(); err != nil {
		return n, err
	}
	return n, buf.Flush()
}

func auditRowCount(n int) string {
	if n == 1 {
		return "1 row"
	}
	return strconv.Itoa(n) + " rows"
}

func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
