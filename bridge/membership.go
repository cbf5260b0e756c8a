package bridge

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

var _ bridgev2.MembershipHandlingNetworkAPI = (*Client)(nil)

// ErrGhostMembership refuses adding or removing patient numbers from Matrix.
var ErrGhostMembership = errors.New("patients cannot be added to or removed from a conversation from Matrix: " +
	"start a conversation with their number instead (start-chat)")

// HandleMatrixMembership is called for membership changes of patient ghosts in conversation
// rooms made from Matrix: SMS has no group membership, so they are refused. Staff joining,
// leaving or being invited never reach it (passOverStaffMembership).
func (cl *Client) HandleMatrixMembership(ctx context.Context, msg *bridgev2.MatrixMembershipChange) (*bridgev2.MatrixMembershipResult, error) {
	if _, isGhost := msg.Target.(*bridgev2.Ghost); isGhost {
		return nil, bridgev2.WrapErrorInStatus(ErrGhostMembership).WithIsCertain(true).WithSendNotice(true)
	}
	return nil, nil
}

// Staff joining, leaving, inviting each other or being invited are Matrix-only matters:
// nothing goes to the patient. bridgev2 v0.32.0 still handles them, and fails every one:
// in a conversation room it looks the member up through a login of their own
// (Portal.getTargetUser asks FindPreferredLogin without the relay), which staff replying
// through the clinic number never have ("failed to find preferred login … relay not set"),
// and in a team space it answers "room is not a portal". Each failure is an error in the
// log and a failed status on the join (message checkpoints, status events).
//
// passOverStaffMembership, the first handler of member events, marks such an event the way
// bridgev2 marks events it should pass over (its double-puppet marker without a timestamp):
// bridgev2's handler still does its end-to-bridge encryption bookkeeping of the member (the
// bot's devices must share keys with a staff member who joins), then drops the event. The
// bot's own and patient ghosts' membership events are left to bridgev2, as are those of
// every other room (the bot's invites, management rooms).
func (c *Connector) passOverStaffMembership(ctx context.Context, evt *event.Event) {
	mc, ok := c.Bridge.Matrix.(*matrix.Connector)
	if !ok || evt.StateKey == nil || evt.Content.Raw == nil {
		return
	}
	target := id.UserID(*evt.StateKey)
	if target == c.Bridge.Bot.GetMXID() || c.Bridge.IsGhostMXID(target) {
		return
	}
	if !c.isConversationRoom(ctx, evt.RoomID) && !c.Rooms.IsTeamSpace(ctx, evt.RoomID) {
		return
	}
	evt.Content.Raw[appservice.DoublePuppetKey] = mc.AS.DoublePuppetValue
}

// isConversationRoom says whether roomID is a conversation's room (a portal).
func (c *Connector) isConversationRoom(ctx context.Context, roomID id.RoomID) bool {
	portal, err := c.Bridge.GetPortalByMXID(ctx, roomID)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Stringer("room_id", roomID).Msg("Failed to look up a room's portal")
	}
	return portal != nil
}

// passOverStaffMembershipFirst registers passOverStaffMembership before bridgev2's member
// handler. Handlers must run one after the other for the mark to be read: the appservice
// runs in Sync mode (configurePortalQueue).
func (c *Connector) passOverStaffMembershipFirst(mc *matrix.Connector) {
	mc.EventProcessor.PrependHandler(event.StateMember, c.passOverStaffMembership)
}

// guardMembership removes from conversation rooms anyone of a server that is not allowed,
// whoever invited them (appservice.Rooms.GuardMembership). Registered on the appservice's
// member events, it sees every membership change in the bridge's rooms.
func (c *Connector) guardMembership(ctx context.Context, evt *event.Event) {
	if evt.StateKey == nil {
		return
	}
	target := id.UserID(*evt.StateKey)
	refused, detail := c.Rooms.GuardMembership(target, evt.Sender, evt.Content.AsMember().Membership)
	if !refused {
		return
	}
	portal, err := c.Bridge.GetPortalByMXID(ctx, evt.RoomID)
	if err != nil || portal == nil {
		return
	}
	log := c.Bridge.Log.With().Str("action", "remove member of a server not allowed").Stringer("room_id", evt.RoomID).Logger()
	// Off the appservice transaction: the kick is a request to the homeserver.
	go c.Rooms.RemoveMember(log.WithContext(c.Bridge.BackgroundCtx), roomOf(portal), target, detail)
}
