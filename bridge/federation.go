package bridge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/config"
	cbdb "github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

// Federation (DESIGN.md "Federation"): a conversation room federates only with the
// clinic's own server and network.federation.allowed_servers, kept as the room's
// m.room.server_acl; `!sms refer` invites a user of an allowed server; anyone of another
// server invited by other means is removed. privacy.mask_room_names keeps names and full
// numbers out of what travels in clear (room name, topic, the patient's display name,
// bridge info), and pins an encrypted notice with them instead.

// ownHost is the clinic's homeserver host (its server name without a port).
func (c *Connector) ownHost() string {
	host, _ := config.ServerHost(c.Bridge.Matrix.ServerName())
	return host
}

// aclHosts are the hosts a conversation room federates with: the own server first, then
// the allowed servers.
func (c *Connector) aclHosts() []string {
	own := c.ownHost()
	hosts := []string{own}
	for _, h := range c.Config.Federation.AllowedHosts() {
		if h != own {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// serverAllowed says whether a user's server may take part in conversations.
func (c *Connector) serverAllowed(userID id.UserID) bool {
	_, server, err := userID.ParseAndValidateRelaxed()
	if err != nil {
		return false
	}
	host, ok := config.ServerHost(server)
	return ok && slices.Contains(c.aclHosts(), host)
}

// maskNames is privacy.mask_room_names.
func (c *Connector) maskNames() bool { return c.Config.Privacy.MaskRoomNames }

// roomPolicy is what applyRoomPolicy puts in a room, to find rooms a config change
// has not reached yet.
func (c *Connector) roomPolicy() cbdb.RoomPolicy {
	return cbdb.RoomPolicy{AllowedServers: c.aclHosts(), MaskNames: c.maskNames()}
}

// patientLabel is the patient as room names, topics and display names show them: the
// formatted number, or only its last four digits when names are masked.
func (c *Connector) patientLabel(e164 string) string {
	if c.maskNames() {
		return appservice.MaskedNumber(e164)
	}
	return sms.FormatPhone(e164, c.Config.DefaultRegion)
}

var _ bridgev2.PortalBridgeInfoFillingNetwork = (*Connector)(nil)

// FillPortalBridgeInfo keeps the patient's number out of the room's bridge info state
// event, which other servers see: its channel ID is the portal ID (the number) unless
// replaced, here by the patient's opaque ghost ID (empty until the room has it).
func (c *Connector) FillPortalBridgeInfo(portal *bridgev2.Portal, content *event.BridgeEventContent) {
	content.Channel.ID = ""
	if IsPatientID(portal.OtherUserID) {
		content.Channel.ID = string(portal.OtherUserID)
	}
}

// setServerACL puts the allow-list into a conversation room as its m.room.server_acl.
func (c *Connector) setServerACL(ctx context.Context, portal *bridgev2.Portal) error {
	if _, err := c.Bridge.Bot.SendState(ctx, portal.MXID, event.StateServerACL, "", &event.Content{Parsed: appservice.ServerACL(c.aclHosts())}, time.Time{}); err != nil {
		return fmt.Errorf("failed to set the room's server ACL: %w", err)
	}
	return nil
}

// applyRoomPolicy brings an existing conversation room to the configured policy: the
// server ACL, members of servers no longer allowed removed and, when masking was turned on or off (wasMasked is the room's old state),
// the name, topic and the patient's display name, and the pinned patient notice.
func (c *Connector) applyRoomPolicy(ctx context.Context, portal *bridgev2.Portal, conv *cbdb.Conversation, wasMasked bool) error {
	if err := c.setServerACL(ctx, portal); err != nil {
		return err
	}
	if err := c.removeDisallowedMembers(ctx, portal); err != nil {
		return err
	}
	if wasMasked == c.maskNames() {
		return nil
	}
	portal.UpdateBridgeInfo(ctx)
	c.updateConversationState(ctx, portal, conv)
	if ghost, err := c.patientGhost(ctx, conv.PatientPhone); err == nil {
		if info, err := c.patientGhostInfo(ctx, conv.PatientPhone); err == nil {
			ghost.UpdateInfo(ctx, info)
		}
	}
	if c.maskNames() {
		return c.pinPatientNotice(ctx, portal, conv.PatientPhone)
	}
	return nil
}

// pinPatientNotice posts who the patient is (name and full number) as an end-to-end
// encrypted notice and pins it, since the room's name shows only the last four digits.
func (c *Connector) pinPatientNotice(ctx context.Context, portal *bridgev2.Portal, e164 string) error {
	name, err := c.DB.Conversation.GetPatientName(ctx, e164)
	if err != nil {
		return err
	}
	who := sms.FormatPhone(e164, c.Config.DefaultRegion)
	if name != "" {
		who = name + ", " + who
	}
	text := appservice.PatientNotice(who)
	resp, err := c.Bridge.Bot.SendMessage(ctx, portal.MXID, event.EventMessage, &event.Content{
		Parsed: &event.MessageEventContent{MsgType: event.MsgNotice, Body: text},
	}, nil)
	if err != nil {
		return fmt.Errorf("failed to post the patient notice: %w", err)
	}
	login, portalID := string(portal.Receiver), string(portal.ID)
	previous, err := c.DB.Conversation.PinnedNotice(ctx, login, portalID)
	if err != nil {
		return err
	}
	pinned := []id.EventID{resp.EventID}
	if mc, ok := c.Bridge.Matrix.(*matrix.Connector); ok {
		var current event.PinnedEventsEventContent
		// Staff's own pins stay; the bridge's earlier patient notice is replaced.
		if err = mc.Bot.StateEvent(ctx, portal.MXID, event.StatePinnedEvents, "", &current); err == nil {
			for _, evtID := range current.Pinned {
				if evtID != id.EventID(previous) && evtID != resp.EventID {
					pinned = append(pinned, evtID)
				}
			}
		}
	}
	_, err = c.Bridge.Bot.SendState(ctx, portal.MXID, event.StatePinnedEvents, "", &event.Content{
		Parsed: &event.PinnedEventsEventContent{Pinned: pinned},
	}, time.Time{})
	if err != nil {
		return fmt.Errorf("failed to pin the patient notice: %w", err)
	}
	return c.DB.Conversation.SetPinnedNotice(ctx, login, portalID, resp.EventID.String())
}

// applyRoomPolicies brings every conversation room to the configured policy: after the
// allow-list or masking changed, each room once, resumably (the last policy applied is
// stored per conversation).
func (c *Connector) applyRoomPolicies(ctx context.Context) {
	log := zerolog.Ctx(ctx).With().Str("action", "apply room policy").Logger()
	policy := c.roomPolicy()
	failed := map[cbdb.ConversationKey]bool{}
	updated := 0
	for ctx.Err() == nil {
		keys, err := c.DB.Conversation.RoomsNotAt(ctx, policy, len(failed)+100)
		if err != nil {
			log.Err(err).Msg("Failed to list conversation rooms")
			return
		}
		progressed := false
		for _, k := range keys {
			if failed[k] {
				continue
			}
			progressed = true
			if err = c.applyRoomPolicyTo(ctx, k, policy); err != nil {
				log.Err(err).Str("portal_id", k.PortalID).Msg("Failed to update a conversation room's server ACL or names; retried at the next start")
				failed[k] = true
				continue
			}
			updated++
		}
		if !progressed {
			break
		}
	}
	if updated > 0 || len(failed) > 0 {
		log.Info().Int("updated", updated).Int("failed", len(failed)).Strs("allowed_servers", policy.AllowedServers).
			Bool("mask_names", policy.MaskNames).Msg("Applied the federation allow-list and name masking to conversation rooms")
	}
}

func (c *Connector) applyRoomPolicyTo(ctx context.Context, k cbdb.ConversationKey, policy cbdb.RoomPolicy) error {
	conv, err := c.DB.Conversation.Get(ctx, k.LoginID, k.PortalID)
	if err != nil || conv == nil {
		return fmt.Errorf("conversation not readable: %w", err)
	}
	old, err := c.DB.Conversation.RoomPolicy(ctx, k.LoginID, k.PortalID)
	if err != nil {
		return err
	}
	portal, err := c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{ID: networkid.PortalID(k.PortalID), Receiver: networkid.UserLoginID(k.LoginID)})
	if err != nil {
		return err
	}
	if portal != nil && portal.MXID != "" {
		if err = c.applyRoomPolicy(ctx, portal, conv, old != nil && old.MaskNames); err != nil {
			return err
		}
	}
	return c.DB.Conversation.SetRoomPolicy(ctx, k.LoginID, k.PortalID, policy)
}

// guardMembership removes from conversation rooms anyone of a server that is not allowed,
// whoever invited them, with a notice and an audit event. Registered on the appservice's
// member events, it sees every membership change in the bridge's rooms.
func (c *Connector) guardMembership(ctx context.Context, evt *event.Event) {
	if evt.StateKey == nil {
		return
	}
	content := evt.Content.AsMember()
	if content.Membership != event.MembershipInvite && content.Membership != event.MembershipJoin && content.Membership != event.MembershipKnock {
		return
	}
	target := id.UserID(*evt.StateKey)
	if c.serverAllowed(target) {
		return
	}
	portal, err := c.Bridge.GetPortalByMXID(ctx, evt.RoomID)
	if err != nil || portal == nil {
		return
	}
	log := c.Bridge.Log.With().Str("action", "remove member of a server not allowed").Stringer("room_id", evt.RoomID).Logger()
	// Off the appservice transaction: the kick is a request to the homeserver.
	go c.removeMember(log.WithContext(c.Bridge.BackgroundCtx), portal, target,
		fmt.Sprintf("%s %s by %s: server not allowed", target, content.Membership, evt.Sender))
}

// removeMember removes a member of a server that is not allowed from a conversation room,
// audited and told in the room; detail is what the audit row says happened.
func (c *Connector) removeMember(ctx context.Context, portal *bridgev2.Portal, target id.UserID, detail string) {
	log := zerolog.Ctx(ctx)
	_, server, _ := target.ParseAndValidateRelaxed()
	reason := fmt.Sprintf("%s is not on this clinic's federation allow-list", server)
	mc, ok := c.Bridge.Matrix.(*matrix.Connector)
	if !ok {
		return
	}
	if _, err := mc.Bot.KickUser(ctx, portal.MXID, &mautrix.ReqKickUser{UserID: target, Reason: reason}); err != nil {
		log.Err(err).Msg("Failed to remove a member of a server that is not allowed")
		return
	}
	if conv, err := c.conversationOf(ctx, portal); err == nil {
		if err = c.audited(ctx, convAudit(conv, cbdb.SystemActor, cbdb.EventMemberRemoved, cbdb.OutcomeRefused, detail), nil); err != nil {
			log.Err(err).Msg("Failed to audit a removed member")
		}
	}
	c.sendNotice(ctx, portal, fmt.Sprintf("⚠ %s was removed from this conversation: %s. Colleagues of allowed "+
		"organisations are invited with `%s refer @user:server`.", target, reason, c.Bridge.Config.CommandPrefix))
}

// removeDisallowedMembers removes from a room everyone (joined, invited or knocking) of a
// server no longer on the allow-list: the ACL stops their server's new events, but their
// devices would still receive the room's keys.
func (c *Connector) removeDisallowedMembers(ctx context.Context, portal *bridgev2.Portal) error {
	mc, ok := c.Bridge.Matrix.(*matrix.Connector)
	if !ok {
		return nil
	}
	members, err := mc.Bot.Members(ctx, portal.MXID)
	if err != nil {
		return fmt.Errorf("failed to list the room's members: %w", err)
	}
	for _, evt := range members.Chunk {
		if evt.StateKey == nil {
			continue
		}
		target := id.UserID(*evt.StateKey)
		membership := evt.Content.AsMember().Membership
		if c.serverAllowed(target) || (membership != event.MembershipJoin && membership != event.MembershipInvite &&
			membership != event.MembershipKnock) {
			continue
		}
		c.removeMember(ctx, portal, target, fmt.Sprintf("%s (%s): server removed from the allow-list", target, membership))
	}
	return nil
}

func fnRefer(ce *commands.Event, c *Connector, conv *cbdb.Conversation) {
	target := id.UserID(strings.TrimSpace(ce.RawArgs))
	localpart, server, err := target.ParseAndValidateRelaxed()
	if err != nil || localpart == "" || len(ce.Args) != 1 {
		ce.Reply("Usage: `$cmdprefix refer @user:server`, e.g. `$cmdprefix refer @dr.lee:hospital.example`")
		return
	}
	actor := cbdb.StaffActor(ce.User.MXID)
	if _, isGhost := c.Bridge.Matrix.ParseGhostMXID(target); isGhost || target == c.Bridge.Bot.GetMXID() {
		ce.Reply("%s is a bridge user, not a colleague.", target)
		return
	}
	if !c.serverAllowed(target) {
		if err = c.audited(ce.Ctx, convAudit(conv, actor, cbdb.EventReferralRefused, cbdb.OutcomeRefused, target.String()), nil); err != nil {
			ce.Log.Err(err).Msg("Failed to audit a refused referral")
		}
		allowed := "none: conversations stay on this server"
		if hosts := c.aclHosts()[1:]; len(hosts) > 0 {
			allowed = strings.Join(hosts, ", ")
		}
		ce.Reply("Not invited: %s is not on this clinic's federation allow-list (allowed servers: %s). "+
			"Ask the bridge administrator to add it to federation.allowed_servers if your organisation works with them.", server, allowed)
		return
	}
	if err = c.Bridge.Bot.EnsureInvited(ce.Ctx, ce.Portal.MXID, target); err != nil {
		ce.Log.Err(err).Msg("Failed to invite a referred user")
		ce.Reply("%s could not be invited: %s", target, err.Error())
		return
	}
	if err = c.audited(ce.Ctx, convAudit(conv, actor, cbdb.EventReferred, cbdb.OutcomeOK, target.String()), nil); err != nil {
		ce.Log.Err(err).Msg("Failed to audit a referral")
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
