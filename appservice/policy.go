package appservice

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
)

// Room is a conversation's Matrix room.
type Room struct {
	ID  id.RoomID
	Key database.ConversationKey
}

// SetServerACL puts the allow-list into a conversation room as its m.room.server_acl.
func (r *Rooms) SetServerACL(ctx context.Context, roomID id.RoomID) error {
	if err := r.Bot.SendState(ctx, roomID, event.StateServerACL, "", r.Federation().ServerACL()); err != nil {
		return fmt.Errorf("failed to set the room's server ACL: %w", err)
	}
	return nil
}

// PinPatientNotice posts who the patient is (name and full number) as an end-to-end
// encrypted notice and pins it, since the room's name shows only the last four digits.
// Staff's own pins stay; the bridge's earlier patient notice is replaced.
func (r *Rooms) PinPatientNotice(ctx context.Context, room Room, e164 string) error {
	name, err := r.DB.Conversation.GetPatientName(ctx, e164)
	if err != nil {
		return err
	}
	who := r.FormatPhone(e164)
	if name != "" {
		who = name + ", " + who
	}
	evtID, err := r.Bot.SendNotice(ctx, room.ID, PatientNotice(who))
	if err != nil {
		return fmt.Errorf("failed to post the patient notice: %w", err)
	}
	previous, err := r.DB.Conversation.PinnedNotice(ctx, room.Key.LoginID, room.Key.PortalID)
	if err != nil {
		return err
	}
	pinned := []id.EventID{evtID}
	var current event.PinnedEventsEventContent
	if err = r.Bot.StateEvent(ctx, room.ID, event.StatePinnedEvents, "", &current); err == nil {
		for _, pin := range current.Pinned {
			if pin != id.EventID(previous) && pin != evtID {
				pinned = append(pinned, pin)
			}
		}
	}
	if err = r.Bot.SendState(ctx, room.ID, event.StatePinnedEvents, "", &event.PinnedEventsEventContent{Pinned: pinned}); err != nil {
		return fmt.Errorf("failed to pin the patient notice: %w", err)
	}
	return r.DB.Conversation.SetPinnedNotice(ctx, room.Key.LoginID, room.Key.PortalID, evtID.String())
}

// ApplyRoomPolicy brings an existing conversation room to the configured policy: the
// server ACL, members of servers no longer allowed removed and, when masking was turned on
// or off (wasMasked is the room's old state), the name, topic and the patient's display
// name (Portals.ShowMasking), and the pinned patient notice.
func (r *Rooms) ApplyRoomPolicy(ctx context.Context, room Room, conv *database.Conversation, wasMasked bool) error {
	if err := r.SetServerACL(ctx, room.ID); err != nil {
		return err
	}
	if err := r.RemoveDisallowedMembers(ctx, room); err != nil {
		return err
	}
	masked := r.Federation().MaskNames
	if wasMasked == masked {
		return nil
	}
	r.Portals.ShowMasking(ctx, conv)
	if masked {
		return r.PinPatientNotice(ctx, room, conv.PatientPhone)
	}
	return nil
}

// ApplyRoomPolicies brings every conversation room to the configured policy: after the
// allow-list or masking changed, each room once, resumably (the last policy applied is
// stored per conversation). A room that fails is retried at the next start.
func (r *Rooms) ApplyRoomPolicies(ctx context.Context) {
	log := zerolog.Ctx(ctx).With().Str("action", "apply room policy").Logger()
	policy := r.Federation().Policy()
	failed := map[database.ConversationKey]bool{}
	updated := 0
	for ctx.Err() == nil {
		keys, err := r.DB.Conversation.RoomsNotAt(ctx, policy, len(failed)+100)
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
			if err = r.applyRoomPolicyTo(ctx, k, policy); err != nil {
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

func (r *Rooms) applyRoomPolicyTo(ctx context.Context, k database.ConversationKey, policy database.RoomPolicy) error {
	conv, err := r.DB.Conversation.Get(ctx, k.LoginID, k.PortalID)
	if err != nil || conv == nil {
		return fmt.Errorf("conversation not readable: %w", err)
	}
	old, err := r.DB.Conversation.RoomPolicy(ctx, k.LoginID, k.PortalID)
	if err != nil {
		return err
	}
	roomID, err := r.Portals.RoomOf(ctx, k)
	if err != nil {
		return err
	}
	if roomID != "" {
		if err = r.ApplyRoomPolicy(ctx, Room{ID: roomID, Key: k}, conv, old != nil && old.MaskNames); err != nil {
			return err
		}
	}
	return r.DB.Conversation.SetRoomPolicy(ctx, k.LoginID, k.PortalID, policy)
}
