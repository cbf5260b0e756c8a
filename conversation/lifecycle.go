package conversation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/carebridge/carebridge/database"
)

// Closing and reopening. A closed conversation leaves the inbox, nobody waits on it, and it
// sorts last in the team spaces, until the patient writes again or staff reopen it.

var (
	// ErrAlreadyClosed is returned by Close for a closed conversation.
	ErrAlreadyClosed = errors.New("the conversation is already closed")
	// ErrNotClosed is returned by Reopen for an open conversation (also when another
	// caller reopened it first).
	ErrNotClosed = errors.New("the conversation is not closed")
)

// Notices of closing and reopening.
const (
	closedNotice         = "%s closed this conversation: it leaves the inbox until the patient writes again."
	reopenedNotice       = "%s reopened this conversation: it is in the inbox again."
	ReopenedByTextNotice = "Reopened: the patient wrote again."
)

// Lifecycle is told that a conversation was closed or reopened, beyond its room's notice
// and state: the room's place in the team spaces, and the clinic's systems (integration
// events). A Rooms that also implements Lifecycle is told; the bridge's does.
type Lifecycle interface {
	// Closed is called once a conversation was closed by actor.
	Closed(ctx context.Context, conv *database.Conversation, actor database.AuditActor)
	// Reopened is called once a conversation was reopened by actor.
	Reopened(ctx context.Context, conv *database.Conversation, actor database.AuditActor)
}

func (s *Service) lifecycle() Lifecycle {
	l, _ := s.Rooms.(Lifecycle)
	return l
}

// Close closes the conversation at the caller's time, audited: it leaves the inbox and the
// patient's wait ends. The room shows it and says who (actorName) closed it.
func (s *Service) Close(ctx context.Context, conv *database.Conversation, actor database.AuditActor, actorName string, at time.Time) error {
	if !conv.ClosedAt.IsZero() {
		return ErrAlreadyClosed
	}
	err := s.DB.Audited(ctx, audit(conv, actor, database.EventClosed, ""), func(ctx context.Context) error {
		return s.DB.Conversation.Close(ctx, conv.LoginID, conv.PortalID, at)
	})
	if err != nil {
		return err
	}
	conv.ClosedAt, conv.WaitingSince = at, time.Time{}
	s.Rooms.ShowState(ctx, conv)
	if l := s.lifecycle(); l != nil {
		l.Closed(ctx, conv, actor)
	}
	s.Rooms.Notice(ctx, conv, fmt.Sprintf(closedNotice, actorName))
	return nil
}

// Reopen opens a closed conversation again, audited, by staff (shown as actorName) or by the
// patient writing again (database.PatientActor). Only the first of concurrent reopenings is audited
// and told; the others get ErrNotClosed.
func (s *Service) Reopen(ctx context.Context, conv *database.Conversation, actor database.AuditActor, actorName string) error {
	if conv.ClosedAt.IsZero() {
		return ErrNotClosed
	}
	err := s.DB.Audited(ctx, audit(conv, actor, database.EventReopened, ""), func(ctx context.Context) error {
		reopened, err := s.DB.Conversation.Reopen(ctx, conv.LoginID, conv.PortalID)
		if err == nil && !reopened {
			// Rolls the audit row back: another caller reopened it first.
			err = ErrNotClosed
		}
		return err
	})
	if errors.Is(err, ErrNotClosed) {
		conv.ClosedAt = time.Time{}
		return err
	} else if err != nil {
		return err
	}
	conv.ClosedAt = time.Time{}
	s.Rooms.ShowState(ctx, conv)
	if l := s.lifecycle(); l != nil {
		l.Reopened(ctx, conv, actor)
	}
	if actor.Kind == database.ActorPatient {
		s.Rooms.Notice(ctx, conv, ReopenedByTextNotice)
	} else {
		s.Rooms.Notice(ctx, conv, fmt.Sprintf(reopenedNotice, actorName))
	}
	return nil
}
