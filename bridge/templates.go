package bridge

import (
	"errors"
	"strings"

	"maunium.net/go/mautrix/bridgev2/commands"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/workflow"
)

// Templates (quick replies): `!sms t` lists the clinic's templates, `!sms t NAME` sends
// one (conversation.Service.SendTemplate).

func fnTemplate(ce *commands.Event) {
	c := ce.Bridge.Network.(*Connector)
	name := strings.ToLower(strings.TrimSpace(ce.RawArgs))
	if name == "" {
		ce.Reply("%s", workflow.TemplateList(c.Config.Templates, c.Bridge.Config.CommandPrefix))
		return
	}
	if _, err := c.Conversations.Template(name); err != nil {
		ce.Reply("There is no template called %q. %s", name, workflow.TemplateList(c.Config.Templates, c.Bridge.Config.CommandPrefix))
		return
	}
	if ce.Portal == nil {
		ce.Reply("Send `$cmdprefix t %s` in a patient's conversation room.", name)
		return
	}
	conv, err := c.conversationOf(ce.Ctx, ce.Portal)
	if err != nil {
		ce.Reply("%s", err.Error())
		return
	}
	_, err = c.Conversations.SendTemplate(ce.Ctx, conv, database.StaffActor(ce.User.MXID), name, ce.EventID.String())
	var tooMany *conversation.TooManySegmentsError
	switch {
	case errors.Is(err, outbox.ErrOptedOut):
		ce.Reply("Not sent: the patient has opted out (STOP); nothing is texted until they text START.")
	case errors.As(err, &tooMany):
		ce.Reply("Not sent: template %s would be %d SMS segments (%s), more than the limit of %d. Ask IT to shorten it.",
			name, tooMany.Segments, tooMany.Encoding, tooMany.Limit)
	case errors.Is(err, conversation.ErrTemplateNotFilled):
		ce.Log.Err(err).Msg("Failed to fill a template")
		ce.Reply("The template could not be filled in; try again.")
	case errors.Is(err, conversation.ErrNotKept):
		ce.Log.Err(err).Msg("Failed to store a template for the secure chat")
		ce.Reply("Not sent: the template could not be stored for the secure chat; try again.")
	case err != nil:
		ce.Log.Err(err).Msg("Failed to text a template")
		ce.Reply("Not sent: %s", conversation.SendErrorWords(err))
	default:
		c.recordStaffReply(ce.Ctx, ce.Portal, conv, ce.User.MXID)
	}
}
