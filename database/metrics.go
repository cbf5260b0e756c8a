package database

import (
	"context"
	"time"
)

const (
	// Both run on every metrics scrape and readiness check: they count and take a minimum
	// over indexed columns (state; expires_at) and read no content.
	pendingReceiptsQuery = `SELECT COUNT(*), COALESCE(MIN(received_at), 0) FROM inbound_receipt WHERE state='pending'`
	activeSessionsQuery  = `SELECT COUNT(*) FROM secure_session WHERE ended_at=0 AND expires_at>$1 AND last_seen_at>$2`
)

// QueueState is the inbound queue as the database holds it.
type QueueState struct {
	// Pending counts texts stored but not yet in their room.
	Pending int64
	// OldestReceived is when the oldest pending text arrived; zero when none is pending.
	OldestReceived time.Time
}

// InboundQueueState counts the pending inbound texts and finds the oldest one.
func (db *Database) InboundQueueState(ctx context.Context) (QueueState, error) {
	var state QueueState
	var oldest int64
	if err := db.QueryRow(ctx, pendingReceiptsQuery).Scan(&state.Pending, &oldest); err != nil {
		return state, err
	}
	if state.Pending > 0 {
		state.OldestReceived = time.UnixMilli(oldest)
	}
	return state, nil
}

// ActiveSessions counts the patient sessions that are open at now: not ended, not past
// their absolute end, and seen within idle.
func (db *Database) ActiveSessions(ctx context.Context, now time.Time, idle time.Duration) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, activeSessionsQuery, now.UnixMilli(), now.Add(-idle).UnixMilli()).Scan(&n)
	return n, err
}
