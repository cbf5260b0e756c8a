package bridge

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/conversation"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/sms"
	"github.com/carebridge/carebridge/workflow"
)

// HelpSectionCarebridge groups carebridge's own commands in `!sms help`.
var HelpSectionCarebridge = commands.HelpSection{Name: "Patient conversations", Order: 25}

// The bridge's commands, every one in the list below, and their handlers (fn…): thin
// adapters that parse the command, call package conversation (or appservice, workflow)
// and reply. registerCommands adds them when the connector starts.

// commandList is every carebridge command, in the order they are registered.
func commandList() []commands.CommandHandler {
	return []commands.CommandHandler{
		cmdStartChat,
		cmdName, cmdSecure, cmdPlain, cmdLink, cmdRevoke, cmdDOB, cmdUnlock,
		cmdRefer, cmdTemplate,
		cmdTake, cmdAssign, cmdUnassign, cmdUrgent, cmdRoutine, cmdClose, cmdReopen, cmdInbox,
		cmdLater, cmdStats,
	}
}

func (c *Connector) registerCommands() {
	if proc, ok := c.Bridge.Commands.(*commands.Processor); ok {
		proc.AddHandlers(commandList()...)
	}
}

// Starting a conversation: `start-chat` (alias `pm`), carebridge's own in place of
// bridgev2's: bridgev2's needs a login of the sender's own, and only the IT account that
// linked a clinic number has one. Anyone allowed to use commands (bridge.permissions
// `commands`, `user` or `admin`) starts a conversation through a clinic number, the way
// they reply through it (relay).
var cmdStartChat = &commands.FullHandler{
	Name:    "start-chat",
	Aliases: []string{"pm"},
	Help: commands.HelpMeta{
		Section: HelpSectionCarebridge,
		Description: "Start a conversation with a patient's number from a clinic number (the room's, yours, or the only one); " +
			"the staff are invited and your messages there reach the patient",
		Args: "[clinic number] <patient number>",
	},
	Func: fnStartChat,
}

func fnStartChat(ce *commands.Event) {
	c := ce.Bridge.Network.(*Connector)
	login, rest := c.startChatLogin(ce)
	if login == nil {
		return
	}
	if len(rest) == 0 {
		ce.Reply("Usage: `$cmdprefix start-chat <patient number>`, e.g. `$cmdprefix start-chat (555) 123-4567`")
		return
	}
	raw := strings.Join(rest, " ")
	phone, err := sms.NormalizePhone(raw, c.Config.DefaultRegion)
	if err != nil {
		ce.Reply("%q is not a phone number this clinic can text.", raw)
		return
	}
	if phone == login.Metadata.(*UserLoginMetadata).Phone {
		ce.Reply("%s is the clinic's own number.", sms.FormatPhone(phone, c.Config.DefaultRegion))
		return
	}
	actor := ce.User.MXID
	portal, created, err := c.startConversation(ce.Ctx, login, phone, database.StaffActor(actor), c.memberName(ce.Ctx, ce.RoomID, actor), "start-chat")
	if err != nil {
		ce.Log.Err(err).Msg("Failed to start a conversation")
		ce.Reply("The conversation could not be started; try again.")
		return
	}
	// The one who started it is in the room even when no staff policy lists them.
	if c.Rooms.Federation().ServerAllowed(actor) {
		if err = c.Bridge.Bot.EnsureInvited(ce.Ctx, portal.MXID, actor); err != nil {
			ce.Log.Err(err).Msg("Failed to invite the staff member to the conversation")
		}
	}
	number := sms.FormatPhone(phone, c.Config.DefaultRegion)
	link := portal.MXID.URI(c.Bridge.Matrix.ServerName()).MatrixToURL()
	if created {
		ce.Reply("Started a conversation with %s from %s: [open it](%s). What you write there reaches the patient.",
			number, sms.FormatPhone(login.Metadata.(*UserLoginMetadata).Phone, c.Config.DefaultRegion), link)
	} else {
		ce.Reply("There is already a conversation with %s: [open it](%s).", number, link)
	}
}

// startChatLogin picks the clinic number a conversation is started from: the one named
// first (its number or login ID), else the conversation room's, else the sender's own
// login, else the only linked number. It replies and returns nil when there is none to
// pick. rest is the arguments after a named clinic number.
func (c *Connector) startChatLogin(ce *commands.Event) (login *bridgev2.UserLogin, rest []string) {
	logins := c.clinicLogins()
	if len(ce.Args) > 1 {
		for _, l := range logins {
			if string(l.ID) == ce.Args[0] {
				return c.usableLogin(ce, l), ce.Args[1:]
			}
			if phone, err := sms.NormalizePhone(ce.Args[0], c.Config.DefaultRegion); err == nil && phone == l.Metadata.(*UserLoginMetadata).Phone {
				return c.usableLogin(ce, l), ce.Args[1:]
			}
		}
	}
	rest = ce.Args
	if ce.Portal != nil && ce.Portal.Receiver != "" {
		if l := c.Bridge.GetCachedUserLoginByID(ce.Portal.Receiver); l != nil {
			return c.usableLogin(ce, l), rest
		}
	}
	if l := ce.User.GetDefaultLogin(); l != nil {
		if _, ok := l.Client.(*Client); ok {
			return c.usableLogin(ce, l), rest
		}
	}
	switch len(logins) {
	case 0:
		ce.Reply("No clinic number is linked yet: an administrator links one with `$cmdprefix login`.")
		return nil, nil
	case 1:
		return c.usableLogin(ce, logins[0]), rest
	}
	numbers := make([]string, len(logins))
	for i, l := range logins {
		numbers[i] = "`" + l.Metadata.(*UserLoginMetadata).Phone + "`"
	}
	slices.Sort(numbers)
	ce.Reply("This clinic texts from several numbers (%s): say which first, e.g. `$cmdprefix start-chat %s <patient number>`.",
		strings.Join(numbers, ", "), strings.Trim(numbers[0], "`"))
	return nil, nil
}

// usableLogin is login when its number can text now; otherwise it replies why not.
func (c *Connector) usableLogin(ce *commands.Event, login *bridgev2.UserLogin) *bridgev2.UserLogin {
	if login.Client == nil || !login.Client.IsLoggedIn() {
		ce.Reply("The clinic number %s is not connected to Twilio just now; ask an administrator.",
			login.Metadata.(*UserLoginMetadata).Phone)
		return nil
	}
	return login
}

var cmdName = conversationCommand("name",
	"Set the patient's name shown for this number (room name and sender), instead of the number", "<full name>", fnName)

// conversationCommand is a command run in a conversation room, on its conversation.
func conversationCommand(name, description, args string, fn func(ce *commands.Event, c *Connector, conv *database.Conversation)) *commands.FullHandler {
	return &commands.FullHandler{
		Name:           name,
		Help:           commands.HelpMeta{Section: HelpSectionCarebridge, Description: description, Args: args},
		RequiresPortal: true,
		Func: func(ce *commands.Event) {
			c := ce.Bridge.Network.(*Connector)
			conv, err := c.conversationOf(ce.Ctx, ce.Portal)
			if err != nil {
				ce.Reply("%s", err.Error())
				return
			}
			fn(ce, c, conv)
		},
	}
}

// Secure mode (securemode.go, and the handlers below).
var (
	cmdSecure = conversationCommand("secure", "Switch this conversation to secure mode: nothing clinical by SMS, "+
		"the patient reads your messages in the secure web chat", "", fnSecure)
	cmdPlain  = conversationCommand("plain", "Switch this conversation back to SMS mode (audited)", "", fnPlain)
	cmdLink   = conversationCommand("link", "Text the patient a fresh secure chat link", "", fnLink)
	cmdRevoke = conversationCommand("revoke", "End every secure chat link and session of this conversation", "", fnRevoke)
	cmdDOB    = conversationCommand("dob", "Record the patient's date of birth, asked with the code (clear with `dob clear`)",
		"<YYYY-MM-DD>", fnDOB)
	cmdUnlock = conversationCommand("unlock", "Lift a lockout after too many wrong codes", "", fnUnlock)
)

// Federation (referrals: appservice/refer.go).
var cmdRefer = conversationCommand("refer",
	"Invite a colleague of another organisation (a server on federation.allowed_servers) into this conversation",
	"<@user:server>", fnRefer)

// Templates (conversation/templates.go).
var cmdTemplate = &commands.FullHandler{
	Name:    "t",
	Aliases: []string{"template"},
	Help: commands.HelpMeta{
		Section:     HelpSectionCarebridge,
		Description: "Send one of the clinic's quick replies (templates) to the patient; without a name, list them",
		Args:        "[name]",
	},
	Func: fnTemplate,
}

// Assignment, urgency, closing and reopening, and the inbox (conversation/assign.go, lifecycle.go, inbox.go; handlers below).
var (
	cmdTake   = conversationCommand("take", "Assign this conversation to yourself", "", fnTake)
	cmdAssign = conversationCommand("assign", "Assign this conversation to a staff member",
		"<@user:server>", fnAssign)
	cmdUnassign = conversationCommand("unassign", "Leave this conversation without an owner", "", fnUnassign)
	cmdUrgent   = conversationCommand("urgent", "Mark this conversation urgent: it sorts first in the inbox and the team space", "", fnUrgent)
	cmdRoutine  = conversationCommand("routine", "Mark this conversation routine again (not urgent)", "", fnRoutine)
	cmdClose    = conversationCommand("close", "Close this conversation: it leaves the inbox until the patient writes again", "", fnClose)
	cmdReopen   = conversationCommand("reopen", "Reopen this closed conversation: it is in the inbox again", "", fnReopen)
	cmdInbox    = &commands.FullHandler{
		Name: "inbox",
		Help: commands.HelpMeta{Section: HelpSectionCarebridge,
			Description: "List open conversations: unassigned first, then urgent, then waiting longest"},
		Func: fnInbox,
	}
)

// Scheduled follow-ups (conversation/followups.go).
var cmdLater = conversationCommand("later",
	"Schedule a message to the patient (clinic time), sent by the conversation's mode at that time; "+
		"without arguments, list this conversation's; `later cancel N` cancels one",
	"[<YYYY-MM-DD HH:MM> | <3d, 2h, 90m, 1d12h>] <text> | cancel <number>", fnLater)

// Response times (conversation.Service.Stats).
var cmdStats = &commands.FullHandler{
	Name: "stats",
	Help: commands.HelpMeta{
		Section: HelpSectionCarebridge,
		Description: "Show response times (today and this week: answered waits, median and 90th percentile time to " +
			"first reply) and who is waiting now, for this room's clinic number, or all numbers in the management room",
	},
	Func: fnStats,
}

// replyText replies with a text that is not a format (it may hold a patient's or staff
// member's words): only $cmdprefix is replaced, as ce.Reply does in its format.
func replyText(ce *commands.Event, text string) {
	ce.Reply("%s", strings.ReplaceAll(text, "$cmdprefix", ce.Bridge.Config.CommandPrefix))
}

func fnSecure(ce *commands.Event, c *Connector, conv *database.Conversation) {
	switchMode(ce, c, conv, database.ModeSecure, "secure")
}

func fnPlain(ce *commands.Event, c *Connector, conv *database.Conversation) {
	switchMode(ce, c, conv, database.ModeSMS, "SMS")
}

func switchMode(ce *commands.Event, c *Connector, conv *database.Conversation, mode database.Mode, word string) {
	err := c.Conversations.SetMode(ce.Ctx, conv, mode, database.StaffActor(ce.User.MXID))
	switch {
	case errors.Is(err, conversation.ErrSameMode):
		ce.Reply("This conversation is already in %s mode.", word)
	case err != nil:
		ce.Log.Err(err).Str("mode", string(mode)).Msg("Failed to switch mode")
		ce.Reply("Failed to switch to %s mode; try again.", word)
	}
}

func fnLink(ce *commands.Event, c *Connector, conv *database.Conversation) {
	err := c.Conversations.TextLink(ce.Ctx, conv, outbox.KindAlert, ce.EventID.String(), database.StaffActor(ce.User.MXID), securechat.AlertText)
	switch {
	case errors.Is(err, outbox.ErrOptedOut):
		ce.Reply("The patient has opted out (STOP): no link can be texted until they text START.")
		return
	case err != nil:
		ce.Log.Err(err).Msg("Failed to text a secure chat link")
		ce.Reply("The link could not be texted: %s", conversation.SendErrorWords(err))
		return
	}
	ce.Reply("A new secure chat link was texted to the patient. It works for %s.", c.Config.SecureChat.LinkLifetime)
}

func fnRevoke(ce *commands.Event, c *Connector, conv *database.Conversation) {
	if err := c.Conversations.Revoke(ce.Ctx, conv, database.StaffActor(ce.User.MXID)); err != nil {
		ce.Log.Err(err).Msg("Failed to revoke links")
		ce.Reply("Failed to revoke; try again.")
		return
	}
	ce.Reply("Every secure chat link and open session of this conversation has ended.")
}

func fnDOB(ce *commands.Event, c *Connector, conv *database.Conversation) {
	arg := strings.TrimSpace(ce.RawArgs)
	if arg == "clear" {
		arg = ""
	} else if arg == "" {
		ce.Reply("Usage: `$cmdprefix dob 1980-02-03`, or `$cmdprefix dob clear`")
		return
	}
	if err := c.Conversations.SetDOB(ce.Ctx, conv, database.StaffActor(ce.User.MXID), arg); err != nil {
		if errors.Is(err, securechat.ErrInvalidDOB) {
			ce.Reply("That is not a date of birth in the form YYYY-MM-DD (e.g. 1980-02-03).")
			return
		}
		ce.Log.Err(err).Msg("Failed to record date of birth")
		ce.Reply("Failed to record the date of birth; try again.")
		return
	}
	// The date itself is in the staff member's command, not repeated in the bridge's answer.
	if arg == "" {
		ce.Reply("The date of birth check is off for this conversation.")
	} else {
		ce.Reply("Recorded. The patient must now enter their date of birth with the code.")
	}
}

func fnUnlock(ce *commands.Event, c *Connector, conv *database.Conversation) {
	if err := c.Conversations.Unlock(ce.Ctx, conv, database.StaffActor(ce.User.MXID)); err != nil {
		ce.Log.Err(err).Msg("Failed to unlock links")
		ce.Reply("Failed to unlock; try again.")
		return
	}
	ce.Reply("The secure chat link is unlocked; the patient can ask for a new code.")
}

func fnName(ce *commands.Event, c *Connector, conv *database.Conversation) {
	err := c.Conversations.SetPatientName(ce.Ctx, conv, database.StaffActor(ce.User.MXID), ce.RawArgs)
	switch {
	case errors.Is(err, conversation.ErrNameEmpty):
		ce.Reply("Usage: `$cmdprefix name <full name>`, e.g. `$cmdprefix name Jane Doe`")
	case errors.Is(err, conversation.ErrNameTooLong):
		ce.Reply("That name is longer than %d characters.", conversation.MaxPatientNameLength)
	case errors.Is(err, conversation.ErrNotShown):
		ce.Log.Err(err).Msg("Failed to show the patient's name")
		ce.Reply("The name is saved but could not be shown yet; try again.")
	case err != nil:
		ce.Log.Err(err).Msg("Failed to store patient name")
		ce.Reply("Failed to save the name; try again.")
	case c.Rooms.Federation().MaskNames:
		ce.Reply("Saved. It is in the pinned notice; the room's name stays %s (privacy.mask_room_names).", appservice.MaskedNumber(conv.PatientPhone))
	default:
		ce.Reply("This number is now shown as %s.", conv.PatientName)
	}
}

func fnRefer(ce *commands.Event, c *Connector, conv *database.Conversation) {
	target := id.UserID(strings.TrimSpace(ce.RawArgs))
	localpart, server, err := target.ParseAndValidateRelaxed()
	if err != nil || localpart == "" || len(ce.Args) != 1 {
		ce.Reply("Usage: `$cmdprefix refer @user:server`, e.g. `$cmdprefix refer @dr.lee:hospital.example`")
		return
	}
	if _, isGhost := c.Bridge.Matrix.ParseGhostMXID(target); isGhost || target == c.Bridge.Bot.GetMXID() {
		ce.Reply("%s is a bridge user, not a colleague.", target)
		return
	}
	var notInvited *appservice.NotInvitedError
	err = c.Rooms.Refer(ce.Ctx, roomOf(ce.Portal), database.StaffActor(ce.User.MXID), target)
	switch {
	case errors.Is(err, appservice.ErrServerNotAllowed):
		allowed := "none: conversations stay on this server"
		if hosts := c.Rooms.Federation().OtherServers(); len(hosts) > 0 {
			allowed = strings.Join(hosts, ", ")
		}
		ce.Reply("Not invited: %s is not on this clinic's federation allow-list (allowed servers: %s). "+
			"Ask the bridge administrator to add it to federation.allowed_servers if your organisation works with them.", server, allowed)
		return
	case errors.As(err, &notInvited):
		ce.Log.Err(err).Msg("Failed to invite a referred user")
		ce.Reply("%s could not be invited: %s", target, err.Error())
		return
	case err != nil:
		ce.Reply("%s is invited, but the referral could not be written to the audit log; tell the administrator.", target)
		return
	}
	// Whether their messages are texted to the patient is the bridge's permissions' call
	// (bridge.permissions: relay for their server or them); say which it is.
	replies := "Their messages stay in this room and do not reach the patient (bridge.permissions gives " + server + " no relay)."
	if c.Bridge.Config.Permissions.Get(target).SendEvents {
		replies = "Their messages here reach the patient like yours, signed with their name."
	}
	c.sendNotice(ce.Ctx, ce.Portal, fmt.Sprintf("%s referred this conversation to %s. They read what is sent after they "+
		"join; earlier messages stay unreadable to them (end-to-end encrypted: keys of older messages are not shared). %s",
		c.memberName(ce.Ctx, ce.Portal.MXID, ce.User.MXID), target, replies))
}

func fnTake(ce *commands.Event, c *Connector, conv *database.Conversation) {
	err := c.Conversations.Assign(ce.Ctx, conv, database.StaffActor(ce.User.MXID), ce.User.MXID.String())
	switch {
	case errors.Is(err, conversation.ErrAlreadyAssigned):
		ce.Reply("This conversation is already yours.")
	case err != nil:
		ce.Log.Err(err).Msg("Failed to assign the conversation")
		ce.Reply("Failed to assign the conversation; try again.")
	}
}

func fnAssign(ce *commands.Event, c *Connector, conv *database.Conversation) {
	arg := strings.TrimSpace(ce.RawArgs)
	if arg == "" {
		ce.Reply("Usage: `$cmdprefix assign @user:server`, e.g. `$cmdprefix assign @kim:%s`", c.Bridge.Matrix.ServerName())
		return
	}
	assignee := id.UserID(arg)
	if _, _, err := assignee.ParseAndValidateRelaxed(); err != nil || len(strings.Fields(arg)) != 1 {
		ce.Reply("%q is not a Matrix ID: write the staff member's full ID, e.g. `$cmdprefix assign @kim:%s`.",
			arg, c.Bridge.Matrix.ServerName())
		return
	}
	if conv.Assignee == assignee.String() {
		ce.Reply("This conversation is already assigned to %s.", c.memberName(ce.Ctx, ce.Portal.MXID, assignee))
		return
	}
	// Staff of this homeserver who are not in the room yet are invited; others (another
	// organisation, over federation) must be invited by staff first, as a referral.
	member, _ := c.Bridge.Matrix.GetMemberInfo(ce.Ctx, ce.Portal.MXID, assignee)
	inRoom := member != nil && (member.Membership == event.MembershipJoin || member.Membership == event.MembershipInvite)
	if !inRoom {
		if assignee.Homeserver() != c.Bridge.Matrix.ServerName() {
			ce.Reply("%s is not in this room: invite them first, then assign.", assignee)
			return
		}
		if err := c.Bridge.Bot.EnsureInvited(ce.Ctx, ce.Portal.MXID, assignee); err != nil {
			ce.Log.Err(err).Msg("Failed to invite the assignee")
			ce.Reply("%s could not be invited to this room: check the Matrix ID.", assignee)
			return
		}
	}
	if err := c.Conversations.Assign(ce.Ctx, conv, database.StaffActor(ce.User.MXID), assignee.String()); err != nil {
		ce.Log.Err(err).Msg("Failed to assign the conversation")
		ce.Reply("Failed to assign the conversation; try again.")
	}
}

func fnUnassign(ce *commands.Event, c *Connector, conv *database.Conversation) {
	err := c.Conversations.Assign(ce.Ctx, conv, database.StaffActor(ce.User.MXID), "")
	switch {
	case errors.Is(err, conversation.ErrNotAssigned):
		ce.Reply("This conversation is not assigned to anyone.")
	case err != nil:
		ce.Log.Err(err).Msg("Failed to unassign the conversation")
		ce.Reply("Failed to unassign the conversation; try again.")
	}
}

func fnUrgent(ce *commands.Event, c *Connector, conv *database.Conversation) {
	setUrgency(ce, c, conv, true)
}

func fnRoutine(ce *commands.Event, c *Connector, conv *database.Conversation) {
	setUrgency(ce, c, conv, false)
}

func setUrgency(ce *commands.Event, c *Connector, conv *database.Conversation, urgent bool) {
	word := "routine"
	if urgent {
		word = "urgent"
	}
	err := c.Conversations.SetUrgency(ce.Ctx, conv, database.StaffActor(ce.User.MXID), c.memberName(ce.Ctx, ce.Portal.MXID, ce.User.MXID), urgent)
	switch {
	case errors.Is(err, conversation.ErrAlreadyUrgent):
		ce.Reply("This conversation is already marked urgent.")
	case errors.Is(err, conversation.ErrNotUrgent):
		ce.Reply("This conversation is not marked urgent.")
	case err != nil:
		ce.Log.Err(err).Msg("Failed to mark the conversation " + word)
		ce.Reply("Failed to mark the conversation %s; try again.", word)
	}
}

func fnClose(ce *commands.Event, c *Connector, conv *database.Conversation) {
	err := c.Conversations.Close(ce.Ctx, conv, database.StaffActor(ce.User.MXID), c.memberName(ce.Ctx, ce.Portal.MXID, ce.User.MXID), c.now())
	switch {
	case errors.Is(err, conversation.ErrAlreadyClosed):
		ce.Reply("This conversation is already closed.")
	case err != nil:
		ce.Log.Err(err).Msg("Failed to close the conversation")
		ce.Reply("Failed to close the conversation; try again.")
	}
}

func fnReopen(ce *commands.Event, c *Connector, conv *database.Conversation) {
	err := c.Conversations.Reopen(ce.Ctx, conv, database.StaffActor(ce.User.MXID), c.memberName(ce.Ctx, ce.Portal.MXID, ce.User.MXID))
	switch {
	case errors.Is(err, conversation.ErrNotClosed):
		ce.Reply("This conversation is not closed.")
	case err != nil:
		ce.Log.Err(err).Msg("Failed to reopen the conversation")
		ce.Reply("Failed to reopen the conversation; try again.")
	}
}

// inboxNumbers are the clinic numbers whose conversations a staff member's inbox lists
// (nil: every number; workflow.InboxNumbers).
func (c *Connector) inboxNumbers(user id.UserID) []string {
	return workflow.InboxNumbers(c.Config.Teams, user.String(), slices.Contains(c.Staff.Members(), user))
}

func fnInbox(ce *commands.Event) {
	c := ce.Bridge.Network.(*Connector)
	text, rich, total, err := c.Conversations.Inbox(ce.Ctx, c.inboxNumbers(ce.User.MXID), c.now())
	if err != nil {
		ce.Log.Err(err).Msg("Failed to read the inbox")
		ce.Reply("Failed to read the inbox; try again.")
		return
	} else if total == 0 {
		ce.Reply("No open conversations.")
		return
	}
	_, err = ce.Bot.SendMessage(ce.Ctx, ce.OrigRoomID, event.EventMessage, &event.Content{Parsed: &event.MessageEventContent{
		MsgType:       event.MsgNotice,
		Body:          text,
		Format:        event.FormatHTML,
		FormattedBody: rich,
		// Listing names is not calling anyone.
		Mentions: &event.Mentions{},
	}}, nil)
	if err != nil {
		ce.Log.Err(err).Msg("Failed to send the inbox")
	}
}

func fnStats(ce *commands.Event) {
	c := ce.Bridge.Network.(*Connector)
	loginID, scope := "", "all clinic numbers"
	if ce.Portal != nil {
		loginID = string(ce.Portal.Receiver)
		if login := c.Bridge.GetCachedUserLoginByID(ce.Portal.Receiver); login != nil {
			scope = sms.FormatPhone(login.Metadata.(*UserLoginMetadata).Phone, c.Config.DefaultRegion)
		} else {
			scope = "this clinic number"
		}
	} else if ce.User.ManagementRoom != ce.RoomID {
		ce.Reply("Use `$cmdprefix stats` in a conversation room (its clinic number) or in your management room (all numbers).")
		return
	}
	report, err := c.Conversations.Stats(ce.Ctx, loginID, scope, c.now())
	if err != nil {
		ce.Log.Err(err).Msg("Failed to compute response times")
		ce.Reply("Failed to compute the response times; try again.")
		return
	}
	ce.Reply("%s", report)
}

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
		c.Responses.StaffReplied(ce.Ctx, conv, ce.User.MXID.String())
	}
}

func fnLater(ce *commands.Event, c *Connector, conv *database.Conversation) {
	sub, rest := workflow.CutWord(ce.RawArgs)
	switch strings.ToLower(sub) {
	case "", "list":
		listLater(ce, c, conv)
	case "cancel":
		cancelLater(ce, c, conv, rest)
	default:
		scheduleLater(ce, c, conv)
	}
}

func scheduleLater(ce *commands.Event, c *Connector, conv *database.Conversation) {
	loc, now := c.FollowUps.Location(), c.now()
	sendAt, text, err := workflow.ParseLater(ce.RawArgs, now, loc)
	if errors.Is(err, workflow.ErrLaterUsage) {
		ce.Reply(workflow.LaterUsage)
		return
	} else if err != nil {
		replyText(ce, "Not scheduled: "+err.Error()+".")
		return
	}
	m, err := c.FollowUps.Schedule(ce.Ctx, conv, ce.User.MXID.String(), sendAt, text)
	var tooMany *conversation.TooManySegmentsError
	if errors.As(err, &tooMany) {
		ce.Reply("Not scheduled: %s.", tooMany.Error())
		return
	} else if err != nil {
		ce.Log.Err(err).Msg("Failed to schedule a message")
		ce.Reply("Failed to schedule the message; try again.")
		return
	}
	replyText(ce, workflow.LaterScheduled(m.ID, sendAt, now, loc))
}

func listLater(ce *commands.Event, c *Connector, conv *database.Conversation) {
	entries, err := c.FollowUps.List(ce.Ctx, conv)
	if err != nil {
		ce.Log.Err(err).Msg("Failed to list scheduled messages")
		ce.Reply("Failed to list the scheduled messages; try again.")
		return
	} else if len(entries) == 0 {
		ce.Reply("No message is scheduled in this conversation. " + workflow.LaterUsage)
		return
	}
	replyText(ce, workflow.LaterList(entries, c.FollowUps.Location()))
}

func cancelLater(ce *commands.Event, c *Connector, conv *database.Conversation, arg string) {
	n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(arg), "#"), 10, 64)
	if err != nil || n <= 0 {
		ce.Reply("Usage: `$cmdprefix later cancel <number>`; `$cmdprefix later` lists the numbers.")
		return
	}
	err = c.FollowUps.Cancel(ce.Ctx, conv, database.StaffActor(ce.User.MXID), n)
	var notCancellable *conversation.NotCancellableError
	switch {
	case errors.Is(err, conversation.ErrNoFollowUp):
		ce.Reply("There is no scheduled message %d in this conversation; `$cmdprefix later` lists them.", n)
	case errors.As(err, &notCancellable):
		ce.Reply("Scheduled message %d cannot be cancelled: %s.", n, notCancellable.Error())
	case err != nil:
		ce.Log.Err(err).Msg("Failed to cancel a scheduled message")
		ce.Reply("Failed to cancel; try again.")
	default:
		ce.Reply("Scheduled message %d is cancelled; it will not be sent.", n)
	}
}
