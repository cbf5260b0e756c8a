package database

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
)

// The clinic workflow's part of the conversation table (owner, closing, waiting) and the
// team_space table.

const (
	setAssigneeQuery = `UPDATE conversation SET assignee=$3 WHERE login_id=$1 AND portal_id=$2`
	// Closing ends the patient's wait too: nobody owes a reply to a closed conversation.
	closeConversationQuery = `UPDATE conversation SET closed_at=$3, waiting_since=0 WHERE login_id=$1 AND portal_id=$2`
	// reopenQuery only matches a closed conversation, so one reopening is reported once.
	reopenQuery      = `UPDATE conversation SET closed_at=0 WHERE login_id=$1 AND portal_id=$2 AND closed_at<>0`
	markWaitingQuery = `UPDATE conversation SET waiting_since=$3 WHERE login_id=$1 AND portal_id=$2 AND waiting_since=0`
	// inboxOrder: unassigned first, urgent first within that, then the longest wait
	// (conversations nobody waits on last), then the oldest conversation.
	inboxOrder = `
		ORDER BY CASE WHEN assignee='' THEN 0 ELSE 1 END,
			CASE WHEN urgent THEN 0 ELSE 1 END,
			CASE WHEN waiting_since=0 THEN 1 ELSE 0 END,
			waiting_since, created_at, login_id, portal_id
	`

	getTeamSpaceQuery = `SELECT room_id FROM team_space WHERE name=$1`
	putTeamSpaceQuery = `
		INSERT INTO team_space (name, room_id) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET room_id=excluded.room_id
	`
)

// SetAssignee records who owns the conversation ("" to unassign).
func (cq *ConversationQuery) SetAssignee(ctx context.Context, loginID, portalID, assignee string) error {
	return cq.Exec(ctx, setAssigneeQuery, loginID, portalID, assignee)
}

// Close marks the conversation done at closedAt; it leaves the inbox and nobody waits.
func (cq *ConversationQuery) Close(ctx context.Context, loginID, portalID string, closedAt time.Time) error {
	return cq.Exec(ctx, closeConversationQuery, loginID, portalID, closedAt.UnixMilli())
}

// Reopen opens a closed conversation again; reopened is false when it was open already.
func (cq *ConversationQuery) Reopen(ctx context.Context, loginID, portalID string) (reopened bool, err error) {
	res, err := cq.GetDB().Exec(ctx, reopenQuery, loginID, portalID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// MarkWaiting records that a patient message waits for a staff reply since since, unless
// an earlier one already waits.
func (cq *ConversationQuery) MarkWaiting(ctx context.Context, loginID, portalID string, since time.Time) error {
	return cq.Exec(ctx, markWaitingQuery, loginID, portalID, since.UnixMilli())
}

// Inbox returns the open conversations of the given clinic numbers (E.164; nil means
// every number) in inbox order, at most limit of them, and how many there are in all.
func (cq *ConversationQuery) Inbox(ctx context.Context, clinicPhones []string, limit int) ([]*Conversation, int, error) {
	where := ` WHERE closed_at=0`
	var args []any
	if clinicPhones != nil {
		if len(clinicPhones) == 0 {
			return nil, 0, nil
		}
		placeholders := make([]string, len(clinicPhones))
		for i, phone := range clinicPhones {
			placeholders[i] = "$" + strconv.Itoa(i+1)
			args = append(args, phone)
		}
		where += ` AND clinic_phone IN (` + strings.Join(placeholders, ", ") + `)`
	}
	var total int
	if err := cq.GetDB().QueryRow(ctx, `SELECT COUNT(*) FROM conversation`+where, args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	args = append(args, limit)
	list, err := cq.QueryMany(ctx, `SELECT `+conversationColumns+` FROM conversation`+where+inboxOrder+
		` LIMIT $`+strconv.Itoa(len(args)), args...)
	return list, total, err
}

// TeamSpaceQuery runs the team_space table's statements: the Matrix space the bridge
// keeps for each team, created once.
type TeamSpaceQuery struct {
	db *dbutil.Database
}

// TeamSpace returns the team_space table's statements.
func (db *Database) TeamSpace() *TeamSpaceQuery {
	return &TeamSpaceQuery{db: db.Database}
}

// Get returns the room ID of a team's space, or "" when it has none yet.
func (tq *TeamSpaceQuery) Get(ctx context.Context, team string) (roomID string, err error) {
	err = tq.db.QueryRow(ctx, getTeamSpaceQuery, team).Scan(&roomID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return
}

// Put records a team's space.
func (tq *TeamSpaceQuery) Put(ctx context.Context, team, roomID string) error {
	_, err := tq.db.Exec(ctx, putTeamSpaceQuery, team, roomID)
	return err
}
