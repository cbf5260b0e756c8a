package database

import (
	"context"
	"time"
)

const (
	// claimAfterHoursQuery takes the closed period atomically: of two patient texts in the
	// same period, only one finds after_hours_at before the period's start.
	claimAfterHoursQuery = `UPDATE conversation SET after_hours_at=$3 WHERE login_id=$1 AND portal_id=$2 AND after_hours_at<$4`
	// releaseAfterHoursQuery gives a claim back, unless a later claim replaced it.
	releaseAfterHoursQuery = `UPDATE conversation SET after_hours_at=$4 WHERE login_id=$1 AND portal_id=$2 AND after_hours_at=$3`
)

// ClaimAfterHours takes the right to text the after-hours reply now, unless it was sent
// since closedSince (the start of the current closed period). Two concurrent callers
// cannot both win.
func (cq *ConversationQuery) ClaimAfterHours(ctx context.Context, loginID, portalID string, now, closedSince time.Time) (bool, error) {
	res, err := cq.GetDB().Exec(ctx, claimAfterHoursQuery, loginID, portalID, now.UnixMilli(), closedSince.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseAfterHours undoes a claim made at claimedAt whose reply could not be texted,
// restoring previous, so the patient's next text in the period tries again.
func (cq *ConversationQuery) ReleaseAfterHours(ctx context.Context, loginID, portalID string, claimedAt, previous time.Time) error {
	prev := int64(0)
	if !previous.IsZero() {
		prev = previous.UnixMilli()
	}
	return cq.Exec(ctx, releaseAfterHoursQuery, loginID, portalID, claimedAt.UnixMilli(), prev)
}
