package conversation

import (
	"context"
	"errors"
	"fmt"

	"github.com/carebridge/carebridge/database"
)

// Who owns a conversation, and whether it is urgent: set by staff, audited, shown in the
// room's topic and state, and told in a notice that says who did it.

var (
	// ErrAlreadyAssigned is returned by Assign when the conversation is already theirs.
	ErrAlreadyAssigned = errors.New("the conversation is already assigned to them")
	// ErrNotAssigned is returned by Assign("") for a conversation nobody owns.
	ErrNotAssigned = errors.New("the conversation is not assigned to anyone")
	// ErrAlreadyUrgent and ErrNotUrgent are returned by SetUrgency when nothing changes.
	ErrAlreadyUrgent = errors.New("the conversation is already marked urgent")
	ErrNotUrgent     = errors.New("the conversation is not marked urgent")
)

// Assign gives the conversation an owner (a staff member's Matrix ID; "" for none) for
// actor, audited. The room shows the owner and says who assigned whom.
func (s *Service) Assign(ctx context.Context, conv *database.Conversation, actor database.AuditActor, assignee string) error {
	switch {
	case assignee == "" && conv.Assignee == "":
		return ErrNotAssigned
	case assignee == conv.Assignee:
		return ErrAlreadyAssigned
	}
	event := database.EventAssigned
	if assignee == "" {
		event = database.EventUnassigned
	}
	err := s.DB.Audited(ctx, audit(conv, actor, event, assignee), func(ctx context.Context) error {
		return s.DB.Conversation.SetAssignee(ctx, conv.LoginID, conv.PortalID, assignee)
	})
	if err != nil {
		return err
	}
	previous := conv.Assignee
	conv.Assignee = assignee
	s.Rooms.ShowState(ctx, conv)
	actorName := s.Rooms.MemberName(ctx, conv, actor.Name)
	var text string
	switch {
	case assignee == "":
		text = fmt.Sprintf("%s unassigned this conversation (it was %s's).", actorName, s.Rooms.MemberName(ctx, conv, previous))
	case assignee == actor.Name:
		text = fmt.Sprintf("%s took this conversation.", actorName)
	default:
		text = fmt.Sprintf("%s assigned this conversation to %s.", actorName, s.Rooms.MemberName(ctx, conv, assignee))
	}
	s.Rooms.Notice(ctx, conv, text)
	return nil
}

// SetUrgency marks the conversation urgent or routine for a staff member (shown as
// actorName): MarkUrgent, and a notice that says who did it.
func (s *Service) SetUrgency(ctx context.Context, conv *database.Conversation, actor database.AuditActor, actorName string, urgent bool) error {
	switch {
	case urgent && conv.Urgent:
		return ErrAlreadyUrgent
	case !urgent && !conv.Urgent:
		return ErrNotUrgent
	}
	if err := s.MarkUrgent(ctx, conv, actor, urgent); err != nil {
		return err
	}
	if urgent {
		s.Rooms.Notice(ctx, conv, fmt.Sprintf("🚨 %s marked this conversation urgent.", actorName))
	} else {
		s.Rooms.Notice(ctx, conv, fmt.Sprintf("%s marked this conversation routine (no longer urgent).", actorName))
	}
	return nil
}
