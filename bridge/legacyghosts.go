package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
)

// Before schema version 11 a patient's ghost was named by the number (@sms_15551234567).
// Portal IDs stay the number: they never leave the bridge (FillPortalBridgeInfo), and the
// sealed messages and the append-only audit log are bound to them. Only what other servers
// see moves: in each of the patient's rooms the old ghost leaves and the opaque one joins,
// the bridge info is sent again without the number, and the old ghost's profile is emptied.
// The old ghost's past events keep their sender: Matrix history cannot be rewritten.

// legacyGhostBatch is how many patients one listing of legacy_ghost returns.
const legacyGhostBatch = 100

// retireLegacyGhosts moves every patient still on a ghost named by the number to the
// opaque ghost, each patient once, resumably: a patient whose rooms could not all be moved
// stays listed and is tried again at the next start.
func (c *Connector) retireLegacyGhosts(ctx context.Context) {
	log := zerolog.Ctx(ctx).With().Str("action", "retire legacy ghosts").Logger()
	ctx = log.WithContext(ctx)
	failed := map[string]bool{}
	retired := 0
	for ctx.Err() == nil {
		phones, err := c.DB.LegacyGhosts().List(ctx, len(failed)+legacyGhostBatch)
		if err != nil {
			log.Err(err).Msg("Failed to list the ghosts named by a patient's number")
			return
		}
		progressed := false
		for _, phone := range phones {
			if failed[phone] {
				continue
			}
			progressed = true
			if err = c.retireLegacyGhost(ctx, phone); err != nil {
				log.Err(err).Msg("Failed to move a patient's rooms to their opaque ghost; retried at the next start")
				failed[phone] = true
				continue
			}
			retired++
		}
		if !progressed {
			break
		}
	}
	if retired > 0 || len(failed) > 0 {
		log.Info().Int("retired", retired).Int("failed", len(failed)).
			Msg("Moved patients from ghosts named by their number to opaque ghosts")
	}
}

// retireLegacyGhost moves one patient's rooms to the opaque ghost, then empties the old
// ghost's profile (the patient's name may be in it).
func (c *Connector) retireLegacyGhost(ctx context.Context, phone string) error {
	legacy := c.Bridge.Matrix.GhostIntent(legacyPatientUserID(phone))
	convs, err := c.DB.Conversation.ListByPatient(ctx, phone)
	if err != nil {
		return fmt.Errorf("failed to list the patient's conversations: %w", err)
	}
	for _, conv := range convs {
		portal, err := c.Bridge.GetExistingPortalByKey(ctx, networkid.PortalKey{
			ID: networkid.PortalID(conv.PortalID), Receiver: networkid.UserLoginID(conv.LoginID)})
		if err != nil {
			return fmt.Errorf("failed to get the conversation's portal: %w", err)
		} else if portal == nil || portal.MXID == "" {
			continue
		}
		if err = c.moveRoomToPatientGhost(ctx, portal, legacy); err != nil {
			return fmt.Errorf("room %s: %w", portal.MXID, err)
		}
	}
	ghost, err := c.Bridge.GetExistingGhostByID(ctx, legacyPatientUserID(phone))
	if err != nil {
		return fmt.Errorf("failed to get the old ghost: %w", err)
	} else if ghost != nil {
		empty := ""
		ghost.UpdateInfo(ctx, &bridgev2.UserInfo{Name: &empty, Identifiers: []string{}})
		if !ghost.NameSet {
			return fmt.Errorf("the old ghost's display name was not emptied")
		}
	}
	return c.DB.LegacyGhosts().Done(ctx, phone)
}

// moveRoomToPatientGhost makes the old ghost leave a room (before the resync, which would
// otherwise remove it with its display name in the event), then resyncs the room as
// bridgev2 does: the opaque ghost joins, the portal's other user becomes it, and the
// bridge info is sent again.
func (c *Connector) moveRoomToPatientGhost(ctx context.Context, portal *bridgev2.Portal, legacy bridgev2.MatrixAPI) error {
	members, err := c.Bridge.Matrix.GetMembers(ctx, portal.MXID)
	if err != nil {
		return fmt.Errorf("failed to get the room's members: %w", err)
	}
	if m := members[legacy.GetMXID()]; m != nil && (m.Membership == event.MembershipJoin || m.Membership == event.MembershipInvite) {
		as, ok := legacy.(*matrix.ASIntent)
		if !ok {
			return fmt.Errorf("the old ghost cannot leave through %T", legacy)
		}
		if _, err = as.Matrix.LeaveRoom(ctx, portal.MXID); err != nil {
			return fmt.Errorf("the old ghost failed to leave: %w", err)
		}
	}
	login, err := c.Bridge.GetExistingUserLoginByID(ctx, portal.Receiver)
	if err != nil {
		return fmt.Errorf("failed to get the clinic number's login: %w", err)
	} else if login == nil {
		return fmt.Errorf("clinic number %s is not linked", portal.Receiver)
	}
	cl, ok := login.Client.(*Client)
	if !ok {
		return fmt.Errorf("the clinic number's login has no client")
	}
	info, err := cl.GetChatInfo(ctx, portal)
	if err != nil {
		return err
	}
	// The other user's change alone does not count as one for bridgev2: save the portal
	// and send the bridge info (now naming the opaque ghost) anyway.
	info.ExtraUpdates = func(context.Context, *bridgev2.Portal) bool { return true }
	portal.UpdateInfo(ctx, info, login, nil, time.Time{})
	if !IsPatientID(portal.OtherUserID) {
		return fmt.Errorf("the room's patient is still %q", portal.OtherUserID)
	}
	ghostMXID := c.Bridge.Matrix.GhostIntent(portal.OtherUserID).GetMXID()
	if m, err := c.Bridge.Matrix.GetMemberInfo(ctx, portal.MXID, ghostMXID); err != nil {
		return err
	} else if m == nil || m.Membership != event.MembershipJoin {
		return fmt.Errorf("the patient's opaque ghost did not join")
	}
	return nil
}
