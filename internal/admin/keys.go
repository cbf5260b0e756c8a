package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/carebridge/carebridge/bridge"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/integration"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
)

// `carebridge keys status` shows which key seals how much of what is stored;
// `carebridge keys rotate` re-seals everything with the current key. Rotation works in
// batches, each committed on its own, so a stopped run loses at most one batch and the
// same command resumes it.

// Exit codes of the keys subcommands: 0 done; 1 rotate stopped (or was limited) with data
// left to re-seal, or status or rotate found data that no configured key opens; 2 wrong
// arguments, config or database.
const keysExitLeft = 1

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runVerbs(ctx, "keys", map[string]runFunc{"status": keysStatus, "rotate": keysRotate}, keysUsage, args, stdout, stderr)
}

func keysUsage(w io.Writer) {
	fmt.Fprintln(w, `usage:
  carebridge keys status -c config.yaml
      per key of network.secure_chat.keys: the secure messages and Twilio auth tokens it seals
  carebridge keys rotate -c config.yaml [--batch 200] [--limit N]
      re-seal every secure message and auth token with network.secure_chat.current_key;
      stopped or limited, run it again to continue`)
}

// keysEnv opens the config and database and builds the keyring; code is the exit code
// when it fails (the reason is printed).
func keysEnv(ctx context.Context, name, path string, stderr io.Writer) (env *toolEnv, keys *securechat.Keyring, code int) {
	env, err := openTool(ctx, path, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "carebridge %s: %v\n", name, err)
		return nil, nil, exitUsage
	}
	return env, env.Keys, 0
}

func keysStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, path := toolFlags("keys status", stderr)
	if code, ok := parseToolArgs(fs, args, stderr); !ok {
		return code
	}
	env, keys, code := keysEnv(ctx, "keys status", *path, stderr)
	if env == nil {
		return code
	}
	defer env.Close()
	messages, err := env.DB.Secure.KeyCounts(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "carebridge keys status: failed to count secure messages:", err)
		return exitUsage
	}
	tokens, err := bridge.LoginTokenKeys(ctx, env.DB)
	if err != nil {
		fmt.Fprintln(stderr, "carebridge keys status:", err)
		return exitUsage
	}
	scheduled, err := env.DB.Scheduled().PendingKeyCounts(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "carebridge keys status: failed to count scheduled follow-ups:", err)
		return exitUsage
	}
	api, err := env.DB.Integration().SealedKeyCounts(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "carebridge keys status: failed to count the integration API's sealed data:", err)
		return exitUsage
	}
	audit, err := env.DB.Audit.MACKeyCounts(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "carebridge keys status: failed to count the audit log's rows by key:", err)
		return exitUsage
	}
	current := keys.Current()
	fmt.Fprintf(stdout, "Keys of network.secure_chat.keys (current: %s):\n", current)
	for _, id := range keys.IDs() {
		mark := ""
		if id == current {
			mark = "  (current: seals new data)"
		}
		fmt.Fprintf(stdout, "  %-12s %s, %s, %s, %s%s\n", id, plural(messages[id], "secure message"), plural(tokens[id], "Twilio auth token"),
			plural(scheduled[id], "scheduled follow-up"), plural(api[id], "integration API item"), mark)
	}
	if n := tokens[""]; n > 0 {
		fmt.Fprintf(stdout, "  %-12s %s, kept by an older version (sealed at the bridge's next start, or by keys rotate)\n",
			"(in clear)", plural(n, "Twilio auth token"))
	}
	code = 0
	for _, id := range slices.Sorted(maps.Keys(messages)) {
		if !keys.Has(id) {
			fmt.Fprintf(stdout, "  %-12s %s sealed with a key that is NOT in the config: they cannot be read until "+
				"the key %q is put back in network.secure_chat.keys\n", id, plural(messages[id], "secure message"), id)
			code = keysExitLeft
		}
	}
	for _, id := range slices.Sorted(maps.Keys(scheduled)) {
		if !keys.Has(id) {
			fmt.Fprintf(stdout, "  %-12s %s sealed with a key that is NOT in the config: put the key %q back before they are due\n",
				id, plural(scheduled[id], "scheduled follow-up"), id)
			code = keysExitLeft
		}
	}
	for _, id := range slices.Sorted(maps.Keys(api)) {
		if !keys.Has(id) {
			fmt.Fprintf(stdout, "  %-12s %s (FHIR texts, queued events, kept answers) sealed with a key that is NOT in the config: put the key %q back\n",
				id, plural(api[id], "integration API item"), id)
			code = keysExitLeft
		}
	}
	for _, id := range slices.Sorted(maps.Keys(audit)) {
		if id != "" && !keys.Has(id) {
			fmt.Fprintf(stdout, "  %-12s %s of the audit log keyed with a key that is NOT in the config: `carebridge audit verify` "+
				"fails until the key %q is put back\n", id, plural(audit[id], "row"), id)
			code = keysExitLeft
		}
	}
	if n := sum(audit); n > 0 {
		fmt.Fprintf(stdout, "Audit log rows by the key that keyed them: %s\n", auditByKey(audit))
	}
	for _, id := range slices.Sorted(maps.Keys(tokens)) {
		if id != "" && !keys.Has(id) {
			fmt.Fprintf(stdout, "  %-12s %s sealed with a key that is NOT in the config: put the key %q back or link the number again\n",
				id, plural(tokens[id], "Twilio auth token"), id)
			code = keysExitLeft
		}
	}
	old := keys.IDs()[1:]
	if len(old) == 0 {
		fmt.Fprintln(stdout, "One key: nothing to rotate. To rotate, add a key (e.g. k2: generate), make it current_key, "+
			"restart the bridge, then run `carebridge keys rotate`.")
		return code
	}
	fmt.Fprintln(stdout)
	for _, id := range old {
		if messages[id] > 0 || tokens[id] > 0 || scheduled[id] > 0 || api[id] > 0 {
			fmt.Fprintf(stdout, "%s still seals stored data: run `carebridge keys rotate -c %s` to re-seal it with %s.\n", id, *path, current)
			continue
		}
		fmt.Fprintf(stdout, "%s seals no stored message or token any more. Keep it in the ring for network.secure_chat.link_lifetime "+
			"(%s) after the rotation, for the links, codes and sessions hashed with it, and until the dates of birth recorded "+
			"before the rotation have been re-set (a patient's next successful check re-records it); then remove it from "+
			"network.secure_chat.keys.\n", id, env.Network.SecureChat.LinkLifetime)
		if audit[id] > 0 {
			fmt.Fprintf(stdout, "  But %s keyed %s of the audit log, which verify only with it: keep it in the ring for as long "+
				"as the audit log must be verifiable (six years under HIPAA). Kept there, it seals nothing new.\n", id, plural(audit[id], "row"))
		}
	}
	return code
}

func keysRotate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, path := toolFlags("keys rotate", stderr)
	batch := fs.Int("batch", securechat.DefaultRotateBatch, "secure messages re-sealed per transaction")
	limit := fs.Int("limit", 0, "stop after this many secure messages (0: all); run again to continue")
	if code, ok := parseToolArgs(fs, args, stderr); !ok {
		return code
	}
	if *batch < 1 || *limit < 0 {
		fmt.Fprintln(stderr, "carebridge keys rotate: --batch must be at least 1 and --limit 0 or more")
		return exitUsage
	}
	env, keys, code := keysEnv(ctx, "keys rotate", *path, stderr)
	if env == nil {
		return code
	}
	defer env.Close()
	// Ctrl-C ends the batch in progress (rolled back) and keeps every batch committed before.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "Re-sealing secure messages with %s, %d per transaction...\n", keys.Current(), *batch)
	rotation, err := rotateKeys(ctx, env.DB, keys, securechat.RotateOptions{
		BatchSize: *batch, Limit: *limit,
		Progress: func(fromKey string, r *securechat.RotateResult) {
			fmt.Fprintf(stdout, "  %s: %d re-sealed\n", fromKey, r.Resealed[fromKey])
		},
	})
	if rotation.messages != nil {
		printRotation(stdout, keys.Current(), rotation)
	}
	outcome, left := database.OutcomeOK, rotation.left()
	if err != nil || left > 0 {
		outcome = database.OutcomeIncomplete
	}
	// The audit row is written even when the run was stopped: what was re-sealed stays so.
	auditErr := env.DB.Audit.Append(context.WithoutCancel(ctx), &database.AuditEntry{
		Actor: database.CLIActor(cliUserName()), Event: database.EventKeysRotated, Outcome: outcome,
		Detail: fmt.Sprintf("%d rows to %s", rotation.total(), keys.Current()),
	})
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "Stopped: every batch committed before stays re-sealed. Run the same command again to continue.")
	case err != nil:
		fmt.Fprintln(stderr, "carebridge keys rotate:", err)
	}
	if auditErr != nil {
		fmt.Fprintln(stderr, "carebridge keys rotate:", auditErr)
		return exitUsage
	} else if err != nil && !errors.Is(err, context.Canceled) {
		return exitUsage
	} else if err != nil || left > 0 {
		return keysExitLeft
	}
	return 0
}

// keyRotation is what one run of `keys rotate` did.
type keyRotation struct {
	messages *securechat.RotateResult
	tokens   *bridge.TokenRotation
	// scheduled follow-ups re-sealed, and those no configured key opens, by key
	scheduled, scheduledUnopened map[string]int
	// the integration API's sealed data re-sealed, and what no configured key opens, by key
	api, apiUnopened map[string]int
	// texts waiting in the outbox re-sealed, and those no configured key opens, by key
	outbox, outboxUnopened map[string]int
}

// rotateKeys re-seals the secure messages, then the linked numbers' auth tokens (few, and
// each rewritten on its own). A stopped run returns what it did with the error.
func rotateKeys(ctx context.Context, db *database.Database, keys *securechat.Keyring, opts securechat.RotateOptions) (keyRotation, error) {
	var r keyRotation
	var err error
	if r.messages, err = securechat.RotateMessages(ctx, db, keys, opts); err != nil {
		return r, err
	}
	if r.tokens, err = bridge.RotateLoginTokens(ctx, db, keys); err != nil {
		return r, err
	}
	if r.scheduled, r.scheduledUnopened, err = securechat.RotateScheduled(ctx, db, keys); err != nil {
		return r, err
	}
	if r.api, r.apiUnopened, err = integration.Rotate(ctx, db, keys); err != nil {
		return r, err
	}
	r.outbox, r.outboxUnopened, err = outbox.Rotate(ctx, db, keys)
	return r, err
}

func (r keyRotation) total() (n int) {
	if r.messages != nil {
		n += r.messages.Total()
	}
	if r.tokens != nil {
		for _, count := range r.tokens.Resealed {
			n += count
		}
	}
	return n + sum(r.scheduled) + sum(r.api) + sum(r.outbox)
}

// left counts messages and tokens that the current key does not seal after the run;
// unknown when the run stopped before the end (then it is at least one).
func (r keyRotation) left() (n int) {
	if r.messages == nil || r.tokens == nil {
		return 1
	}
	for _, count := range r.messages.Left {
		n += count
	}
	for _, count := range r.tokens.Unopened {
		n += count
	}
	return n + r.tokens.Changed + sum(r.scheduledUnopened) + sum(r.apiUnopened) + sum(r.outboxUnopened)
}

func printRotation(w io.Writer, current string, r keyRotation) {
	fmt.Fprintf(w, "Secure messages re-sealed with %s: %d%s\n", current, r.messages.Total(), byKey(r.messages.Resealed))
	if n := sum(r.messages.Unopened); n > 0 {
		fmt.Fprintf(w, "Secure messages left because no configured key opens them: %d%s (see `carebridge keys status`)\n",
			n, byKey(r.messages.Unopened))
	}
	if r.tokens != nil {
		fmt.Fprintf(w, "Twilio auth tokens re-sealed with %s: %d%s\n", current, sum(r.tokens.Resealed), byKey(r.tokens.Resealed))
		if n := sum(r.tokens.Unopened); n > 0 {
			fmt.Fprintf(w, "Twilio auth tokens left because no configured key opens them: %d%s\n", n, byKey(r.tokens.Unopened))
		}
		if r.tokens.Changed > 0 {
			fmt.Fprintf(w, "Twilio auth tokens skipped because the bridge saved the login meanwhile: %d (run again)\n", r.tokens.Changed)
		}
	}
	if left := sum(r.messages.Left); left > 0 {
		fmt.Fprintf(w, "Secure messages not yet sealed with %s: %d%s\n", current, left, byKey(r.messages.Left))
	} else {
		fmt.Fprintf(w, "Every secure message is sealed with %s.\n", current)
	}
	if r.scheduled != nil {
		fmt.Fprintf(w, "Scheduled follow-ups re-sealed with %s: %d%s\n", current, sum(r.scheduled), byKey(r.scheduled))
		if n := sum(r.scheduledUnopened); n > 0 {
			fmt.Fprintf(w, "Scheduled follow-ups left because no configured key opens them: %d%s\n", n, byKey(r.scheduledUnopened))
		}
	}
	if r.api != nil {
		fmt.Fprintf(w, "Integration API items (FHIR texts, events, kept answers) re-sealed with %s: %d%s\n", current, sum(r.api), byKey(r.api))
		if n := sum(r.apiUnopened); n > 0 {
			fmt.Fprintf(w, "Integration API items left because no configured key opens them: %d%s\n", n, byKey(r.apiUnopened))
		}
	}
	if r.outbox != nil {
		fmt.Fprintf(w, "Texts waiting in the outbox re-sealed with %s: %d%s\n", current, sum(r.outbox), byKey(r.outbox))
		if n := sum(r.outboxUnopened); n > 0 {
			fmt.Fprintf(w, "Texts in the outbox left because no configured key opens them: %d%s\n", n, byKey(r.outboxUnopened))
		}
	}
}

// byKey writes counts by key as " (k1: 3, in clear: 1)".
func byKey(counts map[string]int) string {
	if len(counts) == 0 {
		return ""
	}
	parts := make([]string, 0, len(counts))
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		label := id
		if id == "" {
			label = "in clear"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", label, counts[id]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// auditByKey writes audit rows by key as "k1: 10, k2: 2, unkeyed (before v10): 5".
func auditByKey(counts map[string]int) string {
	parts := make([]string, 0, len(counts))
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		if id != "" {
			parts = append(parts, fmt.Sprintf("%s: %d", id, counts[id]))
		}
	}
	if n := counts[""]; n > 0 {
		parts = append(parts, fmt.Sprintf("unkeyed (written before the chain was keyed): %d", n))
	}
	return strings.Join(parts, ", ")
}

func sum(counts map[string]int) (n int) {
	for _, count := range counts {
		n += count
	}
	return n
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
