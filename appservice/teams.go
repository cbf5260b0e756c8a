package appservice

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
)

// Teams: a new conversation invites the members of the teams answering its clinic number
// and goes into each team's Matrix space, which the bridge creates once and keeps. The
// space lists a team's conversations in the order urgent, open, closed.
//
// That order is the space's m.space.child `order`, the one sorting the bridge controls:
// Matrix room tags (m.tag, e.g. a "u.urgent" tag or m.favourite) are per-user account
// data, which an appservice cannot set for staff without double puppeting their accounts.

// Space child orders: urgent conversations first, open ones next, closed ones last.
const (
	OrderUrgent = "0-urgent"
	OrderOpen   = "5-open"
	OrderClosed = "9-closed"
)

// SpaceOrder is where a conversation sorts in its team spaces.
func SpaceOrder(conv *database.Conversation) string {
	switch {
	case !conv.ClosedAt.IsZero():
		return OrderClosed
	case conv.Urgent:
		return OrderUrgent
	default:
		return OrderOpen
	}
}

// TeamsOf returns the teams answering a clinic number (E.164): those naming it, and those
// naming no number.
func TeamsOf(teams []config.TeamConfig, clinicPhone string) []config.TeamConfig {
	var out []config.TeamConfig
	for _, team := range teams {
		if len(team.Numbers) == 0 || slices.Contains(team.Numbers, clinicPhone) {
			out = append(out, team)
		}
	}
	return out
}

// JoinTeams is called while a new conversation room is set up: it invites the members of
// the teams answering the conversation's clinic number, like staff_invites (a failed
// invite fails the setup, which is retried), and adds the room to each team's space
// (failures are logged: every later change of urgency or closing adds it again).
func (r *Rooms) JoinTeams(ctx context.Context, roomID id.RoomID, conv *database.Conversation) error {
	teams := TeamsOf(r.Config.Teams, conv.ClinicPhone)
	var errs []error
	for _, team := range teams {
		if err := NewStaffPolicy(team.Members).InviteAll(ctx, r.Bot, roomID); err != nil {
			errs = append(errs, fmt.Errorf("team %s: %w", team.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, team := range teams {
		log := zerolog.Ctx(ctx).With().Str("team", team.Name).Logger()
		space, err := r.TeamSpace(ctx, team)
		if err != nil {
			log.Err(err).Msg("Failed to get the team's space")
			continue
		}
		if err = r.setSpaceChild(ctx, space, roomID, SpaceOrder(conv)); err != nil {
			log.Err(err).Msg("Failed to add the conversation to the team's space")
			continue
		}
		// The first team's space is the canonical parent, as a room has one home.
		err = r.Bot.SendState(ctx, roomID, event.StateSpaceParent, space.String(),
			&event.SpaceParentEventContent{Via: []string{r.ServerName}, Canonical: i == 0})
		if err != nil {
			log.Err(err).Msg("Failed to set the team's space as the room's parent")
			continue
		}
		log.Debug().Stringer("space_room_id", space).Msg("Added conversation to team space")
	}
	return nil
}

// TeamSpace returns the team's space, creating it the first time (bot-owned, the team
// invited) and inviting members added to the config since.
func (r *Rooms) TeamSpace(ctx context.Context, team config.TeamConfig) (id.RoomID, error) {
	r.teamSpaceLock.Lock()
	defer r.teamSpaceLock.Unlock()
	raw, err := r.DB.TeamSpace().Get(ctx, team.Name)
	if err != nil {
		return "", fmt.Errorf("failed to read the team's space: %w", err)
	}
	space := id.RoomID(raw)
	if space == "" {
		space, err = r.Bot.CreateSpace(ctx, fmt.Sprintf("%s · %s", team.Name, r.Config.ClinicName),
			fmt.Sprintf("Patient conversations of the %s team, urgent first; kept by the bridge", team.Name))
		if err != nil {
			return "", fmt.Errorf("failed to create the team's space: %w", err)
		}
		if err = r.DB.TeamSpace().Put(ctx, team.Name, space.String()); err != nil {
			return "", fmt.Errorf("failed to store the team's space: %w", err)
		}
		zerolog.Ctx(ctx).Info().Str("team", team.Name).Stringer("space_room_id", space).Msg("Created team space")
	}
	if _, done := r.teamSpaceChecked.Load(team.Name); !done {
		if err = NewStaffPolicy(team.Members).InviteAll(ctx, r.Bot, space); err != nil {
			// The space still works for those invited; the rest is tried after a restart.
			zerolog.Ctx(ctx).Err(err).Str("team", team.Name).Msg("Failed to invite team members to the team's space")
		}
		r.teamSpaceChecked.Store(team.Name, true)
	}
	return space, nil
}

// setSpaceChild puts a room into a space (or moves it there) with the given order.
func (r *Rooms) setSpaceChild(ctx context.Context, space, room id.RoomID, order string) error {
	return r.Bot.SendState(ctx, space, event.StateSpaceChild, room.String(),
		&event.SpaceChildEventContent{Via: []string{r.ServerName}, Order: order})
}

// UpdateSpaceOrder moves the conversation to its place in each of its team spaces
// (after urgency changed, or it was closed or reopened); roomID "" does nothing.
func (r *Rooms) UpdateSpaceOrder(ctx context.Context, roomID id.RoomID, conv *database.Conversation) {
	if roomID == "" {
		return
	}
	for _, team := range TeamsOf(r.Config.Teams, conv.ClinicPhone) {
		space, err := r.TeamSpace(ctx, team)
		if err == nil {
			err = r.setSpaceChild(ctx, space, roomID, SpaceOrder(conv))
		}
		if err != nil {
			zerolog.Ctx(ctx).Err(err).Str("team", team.Name).Msg("Failed to update the conversation's place in the team's space")
		}
	}
}

// IsTeamSpace says whether roomID is the space of a configured team.
func (r *Rooms) IsTeamSpace(ctx context.Context, roomID id.RoomID) bool {
	for _, team := range r.Config.Teams {
		space, err := r.DB.TeamSpace().Get(ctx, team.Name)
		if err != nil {
			zerolog.Ctx(ctx).Err(err).Str("team", team.Name).Msg("Failed to read the team's space")
		} else if space != "" && id.RoomID(space) == roomID {
			return true
		}
	}
	return false
}
