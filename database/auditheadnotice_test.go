package database_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

// headRoom records the notices posted, and fails them while down.
type headRoom struct {
	texts []string
	heads []any
	down  bool
}

func (r *headRoom) post(_ context.Context, text string, extra map[string]any) error {
	if r.down {
		return errors.New("homeserver unreachable")
	}
	r.texts = append(r.texts, text)
	r.heads = append(r.heads, extra[database.AuditHeadField])
	return nil
}

func TestAuditHeadIsPostedWhenItChangesAndABrokenChainOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		now := time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)
		var room headRoom
		n := database.NewAuditHeadNotices(db.Audit, func() time.Time { return now }, time.Hour, room.post)

		_, retry := n.Pass(ctx)
		assert.False(t, retry)
		require.Len(t, room.texts, 1, "the empty log's head")
		assert.Equal(t, "0:"+database.GenesisHash, room.heads[0])
		assert.Contains(t, room.texts[0], "0 rows verified, the log is empty.")

		_, retry = n.Pass(ctx)
		assert.False(t, retry)
		assert.Len(t, room.texts, 1, "an unchanged head is not posted again")

		rows := appendDay(t, db)
		room.down = true
		next, retry := n.Pass(ctx)
		assert.True(t, retry)
		assert.Equal(t, now.Add(time.Minute), next, "a failed post is tried again within a minute")
		room.down = false
		_, retry = n.Pass(ctx)
		assert.False(t, retry)
		require.Len(t, room.texts, 2)
		head := database.AuditAnchor{ID: rows[9].ID, Hash: rows[9].Hash}.String()
		assert.Equal(t, head, room.heads[1])
		assert.Equal(t, "Audit log head: "+head+"\n10 rows verified, newest at 2026-01-12T08:39:00Z. Keep this notice: "+
			"`carebridge audit verify --expect "+head+"` shows that the log still holds it.", room.texts[1])

		dropAuditGuards(t, db)
		_, err := db.Exec(ctx, "UPDATE audit_log SET outcome='ok' WHERE id=$1", rows[5].ID)
		require.NoError(t, err)
		_, retry = n.Pass(ctx)
		assert.False(t, retry)
		_, retry = n.Pass(ctx)
		assert.False(t, retry)
		require.Len(t, room.texts, 3, "a broken chain is told once, not once a pass")
		assert.Contains(t, room.texts[2], "⚠️ The audit log's chain is broken: row 6 was changed")
		assert.Nil(t, room.heads[2], "no head in the broken chain's notice")
	})
}
