package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// scale compares the bridge with 100 and with many conversations in its database: the
// webhook answer (inbound at concurrency 8) and two lookups the bridge makes (by key, and
// by the patient's number), timed from the bench over the same database.
type scale struct {
	Conversations int   `json:"conversations"`
	Before        phase `json:"inbound_before"`
	After         phase `json:"inbound_after"`
	// AnswerP50Change and AnswerP99Change are After/Before - 1 of the webhook answer.
	AnswerP50Change float64 `json:"answer_p50_change"`
	AnswerP99Change float64 `json:"answer_p99_change"`
	InsertSeconds   float64 `json:"insert_seconds"`
	LookupKeyBefore dist    `json:"lookup_by_key_before"`
	LookupKeyAfter  dist    `json:"lookup_by_key_after"`
	LookupTelBefore dist    `json:"lookup_by_phone_before"`
	LookupTelAfter  dist    `json:"lookup_by_phone_after"`
}

const scaleConcurrency = 8

func (s *system) openDB() (*sql.DB, error) {
	uri := s.db.URI
	if s.db.Type != "postgres" {
		uri += "&_busy_timeout=10000"
	}
	return sql.Open(s.db.Type, uri)
}

func (s *system) scale(ctx context.Context, conversations, n int) (*scale, error) {
	sc := &scale{Conversations: conversations}
	db, err := s.openDB()
	if err != nil {
		return nil, fmt.Errorf("failed to open the bridge database: %w", err)
	}
	defer db.Close()
	m := min(n, 500)
	note("[%s] scale: inbound with %d conversations", s.kind, len(s.patients))
	if sc.Before, err = s.inbound(ctx, m, scaleConcurrency); err != nil {
		return nil, err
	}
	if sc.LookupKeyBefore, sc.LookupTelBefore, err = s.lookups(ctx, db); err != nil {
		return nil, err
	}
	note("[%s] scale: inserting %d conversations", s.kind, conversations)
	start := time.Now()
	// One statement that runs on SQLite and PostgreSQL; the values are the bench's own.
	_, err = db.ExecContext(ctx, fmt.Sprintf(`
		WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM g WHERE x < %d)
		INSERT INTO conversation (login_id, portal_id, clinic_phone, patient_phone, mode, room_ready, created_at)
		SELECT '%s', CAST(15553000000 + x AS TEXT), '%s', '+' || CAST(15553000000 + x AS TEXT), 'sms', true, %d FROM g`,
		conversations, s.loginID, clinicPhone, time.Now().UnixMilli()))
	if err != nil {
		return nil, fmt.Errorf("failed to insert conversations: %w", err)
	}
	sc.InsertSeconds = time.Since(start).Seconds()
	if s.db.Type == "postgres" {
		_, _ = db.ExecContext(ctx, "ANALYZE conversation")
	}
	note("[%s] scale: inbound with %d conversations", s.kind, conversations+len(s.patients))
	if sc.After, err = s.inbound(ctx, m, scaleConcurrency); err != nil {
		return nil, err
	}
	if sc.LookupKeyAfter, sc.LookupTelAfter, err = s.lookups(ctx, db); err != nil {
		return nil, err
	}
	sc.Before.Name, sc.After.Name = "scale-before", "scale-after"
	sc.AnswerP50Change = sc.After.Answer.P50/sc.Before.Answer.P50 - 1
	sc.AnswerP99Change = sc.After.Answer.P99/sc.Before.Answer.P99 - 1
	return sc, nil
}

// lookups times the conversation table's lookup by key (every inbound text) and by
// patient number (the patient's name), 300 of each over the bench's patients.
func (s *system) lookups(ctx context.Context, db *sql.DB) (byKey, byPhone dist, err error) {
	keyQ := s.bind(`SELECT patient_phone FROM conversation WHERE login_id=$1 AND portal_id=$2`)
	telQ := s.bind(`SELECT patient_name FROM conversation WHERE patient_phone=$1 AND patient_name<>'' ORDER BY created_at DESC LIMIT 1`)
	var keys, tels []time.Duration
	for range 300 {
		p := s.patients[rand.IntN(len(s.patients))]
		start := time.Now()
		var phone string
		if err = db.QueryRowContext(ctx, keyQ, s.loginID, strings.TrimPrefix(p, "+")).Scan(&phone); err != nil {
			return byKey, byPhone, fmt.Errorf("failed to look up a conversation: %w", err)
		}
		keys = append(keys, time.Since(start))
		start = time.Now()
		var name string
		if err = db.QueryRowContext(ctx, telQ, p).Scan(&name); err != nil && err != sql.ErrNoRows {
			return byKey, byPhone, fmt.Errorf("failed to look up a patient's name: %w", err)
		}
		tels = append(tels, time.Since(start))
	}
	return summarise(keys), summarise(tels), nil
}
