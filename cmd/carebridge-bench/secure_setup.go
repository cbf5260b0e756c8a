package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/securechat"
)

// securePhone is the i-th patient (from 1) of the conversations the bench stores in
// secure mode: +1555600xxxx, apart from the texting patients and the scale phase's.
func securePhone(i int) string { return "+" + strconv.Itoa(15556000000+i) }

// secureKeys is the bridge's key ring, built from the config file it runs with, so that
// the link tokens and session IDs the bench stores are hashed as the bridge hashes them.
func (s *system) secureKeys() (*securechat.Keyring, *config.SecureChatConfig, error) {
	raw, err := os.ReadFile(s.br.ConfigPath())
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the bridge config: %w", err)
	}
	var file struct {
		Network struct {
			SecureChat config.SecureChatConfig `yaml:"secure_chat"`
		} `yaml:"network"`
	}
	if err = yaml.Unmarshal(raw, &file); err != nil {
		return nil, nil, fmt.Errorf("failed to parse the bridge config: %w", err)
	}
	keys, err := securechat.KeyringFromConfig(&file.Network.SecureChat)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to build the bridge's key ring from its config: %w", err)
	}
	return keys, &file.Network.SecureChat, nil
}

var placeholder = regexp.MustCompile(`\$(\d+)`)

// bind writes a statement's $1 placeholders as SQLite's ?1 when the database is SQLite.
func (s *system) bind(q string) string {
	if s.db.Type == "postgres" {
		return q
	}
	return placeholder.ReplaceAllString(q, "?$1")
}

func randomToken() string {
	buf := make([]byte, 24)
	_, _ = rand.Read(buf)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// storeSecureConversations stores conversations 1..n of securePhone in secure mode, as
// a staff member's `!sms secure` leaves them (without rooms: the pages do not need one).
func (s *system) storeSecureConversations(ctx context.Context, db *sql.DB, n int) error {
	if n == 0 {
		return nil
	}
	// One statement that runs on SQLite and PostgreSQL; the values are the bench's own.
	_, err := db.ExecContext(ctx, fmt.Sprintf(`
		WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM g WHERE x < %d)
		INSERT INTO conversation (login_id, portal_id, clinic_phone, patient_phone, mode, room_ready, created_at)
		SELECT '%s', CAST(15556000000 + x AS TEXT), '%s', '+' || CAST(15556000000 + x AS TEXT), 'secure', true, %d FROM g`,
		n, s.loginID, clinicPhone, time.Now().UnixMilli()))
	if err != nil {
		return fmt.Errorf("failed to store secure conversations: %w", err)
	}
	return nil
}

// storeLinks stores a link for each patient, as the bridge's IssueLink does (only the
// token's keyed hash), and gives the patient its token.
func (s *system) storeLinks(ctx context.Context, db *sql.DB, keys *securechat.Keyring, cfg *config.SecureChatConfig, pats []*patient) error {
	now := time.Now()
	return s.inTx(ctx, db, s.bind(`INSERT INTO secure_link (token_hash, login_id, portal_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`),
		len(pats), func(i int) []any {
			pats[i].token = randomToken()
			return []any{keys.Hash("link", pats[i].token), s.loginID, pats[i].portal, now.UnixMilli(), now.Add(cfg.LinkLifetime).UnixMilli()}
		})
}

// storeSessions stores a verified session for each patient, as the bridge's Verify does
// (only the cookie's keyed hash), and puts the cookie in the patient's browser.
func (s *system) storeSessions(ctx context.Context, db *sql.DB, keys *securechat.Keyring, cfg *config.SecureChatConfig, pats []*patient) error {
	now := time.Now()
	return s.inTx(ctx, db, s.bind(`INSERT INTO secure_session (session_hash, link_hash, login_id, portal_id, created_at, last_seen_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $5, $6)`),
		len(pats), func(i int) []any {
			session := randomToken() + randomToken()
			pats[i].setSession(s.pageBase(i), session)
			return []any{keys.Hash("session", session), keys.Hash("link", pats[i].token), s.loginID, pats[i].portal,
				now.UnixMilli(), now.Add(cfg.SessionMax).UnixMilli()}
		})
}

// inTx runs one statement n times in a transaction.
func (s *system) inTx(ctx context.Context, db *sql.DB, query string, n int, args func(i int) []any) error {
	if n == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range n {
		if _, err = stmt.ExecContext(ctx, args(i)...); err != nil {
			return fmt.Errorf("failed to store secure chat rows: %w", err)
		}
	}
	return tx.Commit()
}

// secureRooms switches the first n texting patients' conversations to secure mode as
// staff do (`!sms secure` in the room), has the nurse write once in each, and takes the
// link from the alert the bridge texts. Staff messages in these rooms reach the chat
// page live, which is how the bench checks the event streams carry updates.
func (s *system) secureRooms(ctx context.Context, db *sql.DB, tr http.RoundTripper, n int) ([]*patient, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	pats := make([]*patient, n)
	for i := range pats {
		pats[i] = newPatient(tr, s.patients[i])
		pats[i].live, pats[i].room = true, s.rooms[i]
	}
	before := len(s.fake.Messages())
	err := parallel(n, n, func(i int) error {
		p := pats[i]
		if _, err := s.staff.send(ctx, p.room, "!sms secure"); err != nil {
			return fmt.Errorf("failed to send !sms secure: %w", err)
		}
		if err := s.waitMode(ctx, db, p.portal, "secure"); err != nil {
			return err
		}
		_, err := s.staff.send(ctx, p.room, "Your lab results are ready: please read them in the secure chat")
		return err
	})
	if err != nil {
		return nil, err
	}
	link := regexp.MustCompile(regexp.QuoteMeta(securechat.LinkPath) + `([A-Za-z0-9_-]{20,64})`)
	found := 0
	err = waitFake(ctx, s.fake, func(msgs []testenv.FakeMessage) bool {
		for _, m := range msgs[before:] {
			for _, p := range pats {
				if m.To == p.phone && p.token == "" {
					if sub := link.FindStringSubmatch(m.Body); sub != nil {
						p.token = sub[1]
						found++
					}
				}
			}
		}
		return found == n
	})
	if err != nil {
		return nil, fmt.Errorf("%d of %d secure message alerts with a link reached Twilio: %w", found, n, err)
	}
	return pats, nil
}

// waitMode waits until the bridge has stored the conversation's mode.
func (s *system) waitMode(ctx context.Context, db *sql.DB, portal, mode string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	q := s.bind(`SELECT mode FROM conversation WHERE login_id=$1 AND portal_id=$2`)
	for {
		var got string
		if err := db.QueryRowContext(ctx, q, s.loginID, portal).Scan(&got); err == nil && got == mode {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the conversation did not switch to %s mode: %w", mode, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// textCodes has each patient open their link and ask for a code, c at a time, and reads
// each code from the SMS the fake Twilio received for the patient's number.
func (s *system) textCodes(ctx context.Context, pats []*patient, c int, prog *progress) error {
	before := len(s.fake.Messages())
	err := parallel(c, len(pats), func(i int) error {
		err := pats[i].requestCode(ctx, s.pageBase(i))
		prog.sent.Add(1)
		return err
	})
	if err != nil {
		return err
	}
	byPhone := make(map[string]*patient, len(pats))
	for _, p := range pats {
		byPhone[p.phone] = p
	}
	code := regexp.MustCompile(`\b\d{6}\b`)
	got, next := 0, before
	err = waitFake(ctx, s.fake, func(msgs []testenv.FakeMessage) bool {
		for ; next < len(msgs); next++ {
			if p := byPhone[msgs[next].To]; p != nil && p.code == "" {
				if p.code = code.FindString(msgs[next].Body); p.code != "" {
					got++
				}
			}
		}
		prog.seen.Store(int64(got))
		return got == len(pats)
	})
	if err != nil {
		return fmt.Errorf("%d of %d codes reached Twilio: %w", got, len(pats), err)
	}
	return nil
}

// ensureOpenFiles raises this process's open-file limit to hold the event streams and
// checks the bridge's (a Go program raises its own soft limit to the hard one at start).
func ensureOpenFiles(streams, bridgePid int) error {
	n := streams + 256 // the bench's other connections, the bridge's database and homeserver
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < uint64(n) {
		if lim.Max < uint64(n) {
			return fmt.Errorf("the open-file limit is %d (hard limit %d): %d event streams need %d; raise it (ulimit -n)",
				lim.Cur, lim.Max, streams, n)
		}
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("failed to raise the open-file limit: %w", err)
		}
	}
	limits, err := os.ReadFile("/proc/" + strconv.Itoa(bridgePid) + "/limits")
	if err != nil {
		return nil // not Linux: the streams will tell
	}
	for _, line := range strings.Split(string(limits), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				if soft, err := strconv.Atoi(fields[0]); err == nil && soft < n {
					return fmt.Errorf("the bridge's open-file limit is %d: %d event streams need %d; raise it (ulimit -Hn)", soft, streams, n)
				}
			}
		}
	}
	return nil
}
