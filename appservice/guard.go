package appservice

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
)

// The membership guard: anyone of a server that is not allowed is removed from
// conversation rooms, whoever invited them, with a notice and an audit event. The ACL stops
// their server's new events, but their devices would still receive the room's keys.

// RemoveMember removes target, of a server that is not allowed, from a conversation room,
// audited and told in the room; detail is what the audit row says happened.
func (r *Rooms) RemoveMember(ctx context.Context, room Room, target id.UserID, detail string) {
	log := zerolog.Ctx(ctx)
	_, server, _ := target.ParseAndValidateRelaxed()
	reason := fmt.Sprintf("%s is not on this clinic's federation allow-list", server)
	if err := r.Bot.Kick(ctx, room.ID, target, reason); err != nil {
		log.Err(err).Msg("Failed to remove a member of a server that is not allowed")
		return
	}
	conv, err := r.DB.Conversation.Get(ctx, room.Key.LoginID, room.Key.PortalID)
	if err == nil && conv != nil {
		entry := &database.AuditEntry{Actor: database.SystemActor, LoginID: conv.LoginID, PortalID: conv.PortalID,
			Event: database.EventMemberRemoved, Outcome: database.OutcomeRefused, Detail: detail}
		if err = r.DB.Audited(ctx, entry, nil); err != nil {
			log.Err(err).Msg("Failed to audit a removed member")
		}
	}
	_, err = r.Bot.SendNotice(ctx, room.ID, fmt.Sprintf("⚠ %s was removed from this conversation: %s. Colleagues of allowed "+
		"organisations are invited with `%s refer @user:server`.", target, reason, r.CommandPrefix))
	if err != nil {
		log.Err(err).Msg("Failed to send notice to conversation room")
	}
}

// RemoveDisallowedMembers removes from a room everyone (joined, invited or knocking) of a
// server no longer on the allow-list.
func (r *Rooms) RemoveDisallowedMembers(ctx context.Context, room Room) error {
	members, err := r.Bot.Members(ctx, room.ID)
	if err != nil {
		return fmt.Errorf("failed to list the room's members: %w", err)
	}
	fed := r.Federation()
	for _, m := range members {
		if fed.Refuses(m.UserID, m.Membership) {
			r.RemoveMember(ctx, room, m.UserID, fmt.Sprintf("%s (%s): server removed from the allow-list", m.UserID, m.Membership))
		}
	}
	return nil
}

// GuardMembership says whether a membership change in a conversation room is refused, and
// what the audit row says of it; the caller removes the member (RemoveMember) off the
// homeserver's transaction.
func (r *Rooms) GuardMembership(target, sender id.UserID, membership event.Membership) (refused bool, detail string) {
	if !r.Federation().Refuses(target, membership) {
		return false, ""
	}
	return true, fmt.Sprintf("%s %s by %s: server not allowed", target, membership, sender)
}
