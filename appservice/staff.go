package appservice

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/id"
)

// Inviter invites Matrix users into a room; bridgev2's bot intent is one.
type Inviter interface {
	EnsureInvited(ctx context.Context, roomID id.RoomID, userID id.UserID) error
}

// StaffPolicy says which staff members are invited to every new conversation.
type StaffPolicy struct {
	members []id.UserID
}

// NewStaffPolicy takes the configured Matrix IDs (validated with the config).
func NewStaffPolicy(mxids []string) *StaffPolicy {
	p := &StaffPolicy{}
	for _, raw := range mxids {
		p.members = append(p.members, id.UserID(raw))
	}
	return p
}

// Members returns the staff invited to every conversation.
func (p *StaffPolicy) Members() []id.UserID {
	return p.members
}

// InviteAll is called when a conversation room is created, before the first patient
// message is sent into it, so that staff devices receive that message's encryption keys.
// It invites every member it can and returns the failures joined.
func (p *StaffPolicy) InviteAll(ctx context.Context, inviter Inviter, roomID id.RoomID) error {
	var errs []error
	for _, userID := range p.members {
		if err := inviter.EnsureInvited(ctx, roomID, userID); err != nil {
			errs = append(errs, fmt.Errorf("failed to invite %s: %w", userID, err))
		}
	}
	return errors.Join(errs...)
}
