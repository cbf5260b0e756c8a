package bridge

import (
	"context"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/bridgev2/commands"

	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
	"github.com/carebridge/carebridge/workflow"
)

// Templates (quick replies): `!sms t` lists the clinic's templates, `!sms t NAME` fills
// one in and sends it the way the conversation sends: texted in SMS mode, kept for the
// secure chat (with an alert) in secure mode.

func fnTemplate(ce *commands.Event) {
	c := ce.Bridge.Network.(*Connector)
	name := strings.ToLower(strings.TrimSpace(ce.RawArgs))
	if name == "" {
		ce.Reply("%s", workflow.TemplateList(c.Config.Templates, c.Bridge.Config.CommandPrefix))
		return
	}
	text, ok := c.Config.Templates[name]
	if !ok {
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
	if conv.Mode == database.ModeSecure {
		c.sendSecureTemplate(ce, conv, name, text)
	} else {
		c.sendSMSTemplate(ce, conv, name, text)
	}
}

// templateText fills a template for a conversation, issuing a fresh secure link (by
// actor) only when the template has {link} and is texted: in secure mode the text is read
// inside the secure chat, so {link} is words (securechat.ChatWords) and the alert texted
// to the patient stays the one live link.
func (c *Connector) templateText(ctx context.Context, conv *database.Conversation, actor database.AuditActor, text string) (string, error) {
	name := conv.PatientName
	if name == "" {
		var err error
		if name, err = c.DB.Conversation.GetPatientName(ctx, conv.PatientPhone); err != nil {
			return "", fmt.Errorf("failed to read the patient's name: %w", err)
		}
	}
	link := ""
	if workflow.NeedsLink(text) && conv.Mode == database.ModeSecure {
		link = securechat.ChatWords(securechat.Language(conv, c.Config.SecureChat.Language))
	} else if workflow.NeedsLink(text) {
		var err error
		if link, err = c.Secure.IssueLink(ctx, conv, actor); err != nil {
			return "", fmt.Errorf("failed to issue a secure link: %w", err)
		}
	}
	return workflow.FillTemplate(text, name, c.Config.ClinicName, link), nil
}

// sendSMSTemplate texts a template in SMS mode; the notice shows the room what went out.
func (c *Connector) sendSMSTemplate(ce *commands.Event, conv *database.Conversation, name, template string) {
	if conv.OptedOut {
		ce.Reply("Not sent: the patient has opted out (STOP); nothing is texted until they text START.")
		return
	}
	text, err := c.templateText(ce.Ctx, conv, database.StaffActor(ce.User.MXID), template)
	if err != nil {
		ce.Log.Err(err).Msg("Failed to fill a template")
		ce.Reply("The template could not be filled in; try again.")
		return
	}
	if segments, enc := sms.CountSegments(text); segments > c.Config.MaxSegments {
		ce.Reply("Not sent: template %s would be %d SMS segments (%s), more than the limit of %d. Ask IT to shorten it.",
			name, segments, enc, c.Config.MaxSegments)
		return
	}
	if err = c.Conversations.Text(ce.Ctx, conv, outbox.KindTemplate, text, ce.EventID.String()); err != nil {
		ce.Log.Err(err).Msg("Failed to text a template")
		ce.Reply("Not sent: %s", conversation.SendErrorWords(err))
		return
	}
	c.templateSent(ce, conv, name, "sms")
	c.sendNotice(ce.Ctx, ce.Portal, fmt.Sprintf("Sent template %s by SMS: %s", name, text))
}

// sendSecureTemplate keeps a template for the secure chat and alerts the patient; it is
// never texted.
func (c *Connector) sendSecureTemplate(ce *commands.Event, conv *database.Conversation, name, template string) {
	text, err := c.templateText(ce.Ctx, conv, database.StaffActor(ce.User.MXID), template)
	if err != nil {
		ce.Log.Err(err).Msg("Failed to fill a template")
		ce.Reply("The template could not be filled in; try again.")
		return
	}
	_, err = c.Conversations.KeepForSecureChat(ce.Ctx, conv, database.StaffActor(ce.User.MXID), c.staffName(ce.Ctx, ce.Portal, ce.User.MXID), text, ce.EventID.String())
	if err != nil {
		ce.Log.Err(err).Msg("Failed to store a template for the secure chat")
		ce.Reply("Not sent: the template could not be stored for the secure chat; try again.")
		return
	}
	c.templateSent(ce, conv, name, "secure")
	c.sendNotice(ce.Ctx, ce.Portal, fmt.Sprintf("🔒 Sent template %s to the secure chat: %s", name, text))
}

// templateSent audits a template that went out and counts it as the staff member's reply.
func (c *Connector) templateSent(ce *commands.Event, conv *database.Conversation, name, mode string) {
	if err := c.audited(ce.Ctx, convAudit(conv, database.StaffActor(ce.User.MXID), database.EventTemplateSent, database.OutcomeOK, name+" by "+mode), nil); err != nil {
		ce.Log.Err(err).Msg("Failed to audit a template")
	}
	c.onStaffReply(ce.Ctx, ce.Portal, ce.User.MXID)
}
