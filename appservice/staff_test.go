package appservice

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"
)

type recordingInviter struct {
	invited []id.UserID
	refuse  id.UserID
}

func (r *recordingInviter) EnsureInvited(_ context.Context, _ id.RoomID, userID id.UserID) error {
	if userID == r.refuse {
		return errors.New("M_FORBIDDEN")
	}
	r.invited = append(r.invited, userID)
	return nil
}

func TestInviteAllInvitesEveryoneAndReportsFailures(t *testing.T) {
	p := NewStaffPolicy([]string{"@nurse.kim:clinic.example", "@frontdesk:clinic.example", "@dr.lee:clinic.example"})
	assert.Len(t, p.Members(), 3)
	inv := &recordingInviter{refuse: "@frontdesk:clinic.example"}
	err := p.InviteAll(context.Background(), inv, "!room:clinic.example")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "@frontdesk:clinic.example")
	assert.Equal(t, []id.UserID{"@nurse.kim:clinic.example", "@dr.lee:clinic.example"}, inv.invited,
		"one refusal does not stop the other invites")
}
