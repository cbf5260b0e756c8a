package conversation

import (
	"context"
	"time"

	"github.com/carebridge/carebridge/sms"
	"github.com/carebridge/carebridge/workflow"
)

// Inbox is the open conversations of the given clinic numbers (nil: every number) as a
// notice in plain text and HTML, at now (workflow.FormatInbox); total is 0, and the texts
// empty, when none is open.
func (s *Service) Inbox(ctx context.Context, numbers []string, now time.Time) (text, rich string, total int, err error) {
	list, total, err := s.DB.Conversation.Inbox(ctx, numbers, workflow.InboxLimit)
	if err != nil || total == 0 {
		return "", "", total, err
	}
	lines := make([]workflow.InboxLine, 0, len(list))
	for _, conv := range list {
		patient := conv.PatientName
		if patient == "" {
			patient = sms.FormatPhone(conv.PatientPhone, s.Config.DefaultRegion)
		}
		owner := ""
		if conv.Assignee != "" {
			owner = s.Rooms.MemberName(ctx, conv, conv.Assignee)
		}
		lines = append(lines, workflow.InboxLine{Parts: workflow.InboxEntry(conv, patient, owner, now), Link: s.Rooms.Link(ctx, conv)})
	}
	text, rich = workflow.FormatInbox(total, lines)
	return text, rich, total, nil
}

// Stats is the response-time report (workflow.Stats) of one clinic number's conversations
// (loginID; "" for every number), titled by scope, at now in the clinic's time zone.
func (s *Service) Stats(ctx context.Context, loginID, scope string, now time.Time) (string, error) {
	return workflow.Stats(ctx, s.DB.ResponseTimes(), loginID, scope, now, workflow.ClinicLocation(&s.Config.BusinessHours))
}
