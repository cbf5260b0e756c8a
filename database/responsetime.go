package database

import (
	"context"
	"time"

	"go.mau.fi/util/dbutil"
)

const (
	// endWaitQuery is the compare-and-set that lets only the first staff reply end a wait.
	endWaitQuery = `
		UPDATE conversation SET waiting_since=0
		WHERE login_id=$1 AND portal_id=$2 AND waiting_since=$3 AND waiting_since<>0
	`
	insertResponseTimeQuery = `
		INSERT INTO response_time (login_id, portal_id, waited_from, answered_at, answered_by)
		VALUES ($1, $2, $3, $4, $5)
	`
	// An empty login ID ($3) means every clinic number.
	listResponseTimesQuery = `
		SELECT login_id, portal_id, waited_from, answered_at, answered_by FROM response_time
		WHERE answered_at>=$1 AND answered_at<$2 AND ($3='' OR login_id=$3)
		ORDER BY answered_at
	`
	backlogQuery = `
		SELECT COUNT(*), COALESCE(MIN(waiting_since), 0) FROM conversation
		WHERE waiting_since<>0 AND closed_at=0 AND ($1='' OR login_id=$1)
	`
)

// ResponseTime is one patient wait ended by a staff reply.
type ResponseTime struct {
	LoginID    string
	PortalID   string
	WaitedFrom time.Time
	AnsweredAt time.Time
	AnsweredBy string // the staff member's Matrix ID
}

// Wait is the time to the first staff reply (never negative).
func (r *ResponseTime) Wait() time.Duration {
	return max(r.AnsweredAt.Sub(r.WaitedFrom), 0)
}

// Backlog is the patients waiting for a staff reply in open conversations.
type Backlog struct {
	Waiting int
	// Oldest is when the longest current wait began (zero when nobody waits).
	Oldest time.Time
}

// ResponseTimeQuery runs the response_time table's statements.
type ResponseTimeQuery struct {
	*dbutil.QueryHelper[*ResponseTime]
}

// ResponseTimes runs the response_time table's statements.
func (db *Database) ResponseTimes() *ResponseTimeQuery {
	return &ResponseTimeQuery{dbutil.MakeQueryHelper(db.Database, func(qh *dbutil.QueryHelper[*ResponseTime]) *ResponseTime {
		return &ResponseTime{}
	})}
}

// Scan reads one row.
func (r *ResponseTime) Scan(row dbutil.Scannable) (*ResponseTime, error) {
	var waitedFrom, answeredAt int64
	if err := row.Scan(&r.LoginID, &r.PortalID, &waitedFrom, &answeredAt, &r.AnsweredBy); err != nil {
		return nil, err
	}
	r.WaitedFrom, r.AnsweredAt = time.UnixMilli(waitedFrom), time.UnixMilli(answeredAt)
	return r, nil
}

// EndWait ends the conversation's wait that began at waitingSince and records its response
// time, in one transaction. It reports false, recording nothing, when that wait was already
// ended (by an earlier reply) or replaced.
func (rq *ResponseTimeQuery) EndWait(ctx context.Context, r *ResponseTime) (recorded bool, err error) {
	err = rq.GetDB().DoTxn(ctx, nil, func(ctx context.Context) error {
		res, err := rq.GetDB().Exec(ctx, endWaitQuery, r.LoginID, r.PortalID, r.WaitedFrom.UnixMilli())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n != 1 {
			return err
		}
		recorded = true
		return rq.Exec(ctx, insertResponseTimeQuery, r.LoginID, r.PortalID, r.WaitedFrom.UnixMilli(),
			r.AnsweredAt.UnixMilli(), r.AnsweredBy)
	})
	if err != nil {
		recorded = false
	}
	return recorded, err
}

// List returns the waits answered from since until before until, of one clinic number
// (loginID) or of all ("").
func (rq *ResponseTimeQuery) List(ctx context.Context, loginID string, since, until time.Time) ([]*ResponseTime, error) {
	return rq.QueryMany(ctx, listResponseTimesQuery, since.UnixMilli(), until.UnixMilli(), loginID)
}

// Backlog counts the open conversations of one clinic number (or all, with "") whose
// patient waits for a staff reply.
func (rq *ResponseTimeQuery) Backlog(ctx context.Context, loginID string) (*Backlog, error) {
	var b Backlog
	var oldest int64
	if err := rq.GetDB().QueryRow(ctx, backlogQuery, loginID).Scan(&b.Waiting, &oldest); err != nil {
		return nil, err
	}
	b.Oldest = unixMilliOrZero(oldest)
	return &b, nil
}
