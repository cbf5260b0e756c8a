package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/config"
	cbdb "github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/workflow"
)

// Teams: a new conversation invites the members of the teams answering its clinic number
// and goes into each team's Matrix space, which the bridge creates once and keeps. The
// space lists a team's conversations in the order urgent, open, closed.
//
// That order is the space's m.space.child `order`, the one sorting the bridge controls:
// Matrix room tags (m.tag, e.g. a "u.urgent" tag or m.favourite) are per-user account
// data, which an appservice cannot set for staff without double puppeting their accounts.

// teamsOf returns the teams answering a clinic number (E.164).
func (c *Connector) teamsOf(clinicPhone string) []config.TeamConfig {
	return workflow.TeamsOf(c.Config.Teams, clinicPhone)
}

// joinTeams is called while a new conversation room is set up: it invites the members of
// the teams answering the clinic number, like staff_invites (a failed invite fails the
// setup, which is retried), and adds the room to each team's space (failures are logged:
// every later change of urgency or closing adds it again).
func (c *Connector) joinTeams(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal) error {
	teams := c.teamsOf(login.Metadata.(*UserLoginMetadata).Phone)
	var errs []error
	for _, team := range teams {
		if err := appservice.NewStaffPolicy(team.Members).InviteAll(ctx, c.Bridge.Bot, portal.MXID); err != nil {
			errs = append(errs, fmt.Errorf("team %s: %w", team.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(teams) == 0 {
		return nil
	}
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		return err
	}
	for i, team := range teams {
		log := zerolog.Ctx(ctx).With().Str("team", team.Name).Logger()
		space, err := c.teamSpace(ctx, team)
		if err != nil {
			log.Err(err).Msg("Failed to get the team's space")
			continue
		}
		if err = c.setSpaceChild(ctx, space, portal.MXID, workflow.SpaceOrder(conv)); err != nil {
			log.Err(err).Msg("Failed to add the conversation to the team's space")
			continue
		}
		// The first team's space is the canonical parent, as a room has one home.
		_, err = c.Bridge.Bot.SendState(ctx, portal.MXID, event.StateSpaceParent, space.String(), &event.Content{
			Parsed: &event.SpaceParentEventContent{Via: []string{c.Bridge.Matrix.ServerName()}, Canonical: i == 0},
		}, time.Time{})
		if err != nil {
			log.Err(err).Msg("Failed to set the team's space as the room's parent")
			continue
		}
		log.Debug().Stringer("space_room_id", space).Msg("Added conversation to team space")
	}
	return nil
}

// teamSpace returns the team's space, creating it the first time (bot-owned, the team
// invited) and inviting members added to the config since.
func (c *Connector) teamSpace(ctx context.Context, team config.TeamConfig) (id.RoomID, error) {
	c.workflow.teamSpaceLock.Lock()
	defer c.workflow.teamSpaceLock.Unlock()
	raw, err := c.DB.TeamSpace().Get(ctx, team.Name)
	if err != nil {
		return "", fmt.Errorf("failed to read the team's space: %w", err)
	}
	space := id.RoomID(raw)
	if space == "" {
		space, err = c.Bridge.Bot.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Visibility:      "private",
			Preset:          "private_chat",
			Name:            fmt.Sprintf("%s · %s", team.Name, c.Config.ClinicName),
			Topic:           fmt.Sprintf("Patient conversations of the %s team, urgent first; kept by the bridge", team.Name),
			CreationContent: map[string]any{"type": event.RoomTypeSpace},
		})
		if err != nil {
			return "", fmt.Errorf("failed to create the team's space: %w", err)
		}
		if err = c.DB.TeamSpace().Put(ctx, team.Name, space.String()); err != nil {
			return "", fmt.Errorf("failed to store the team's space: %w", err)
		}
		zerolog.Ctx(ctx).Info().Str("team", team.Name).Stringer("space_room_id", space).Msg("Created team space")
	}
	if _, done := c.workflow.teamSpaceChecked.Load(team.Name); !done {
		if err = appservice.NewStaffPolicy(team.Members).InviteAll(ctx, c.Bridge.Bot, space); err != nil {
			// The space still works for those invited; the rest is tried after a restart.
			zerolog.Ctx(ctx).Err(err).Str("team", team.Name).Msg("Failed to invite team members to the team's space")
		}
		c.workflow.teamSpaceChecked.Store(team.Name, true)
	}
	return space, nil
}

// setSpaceChild puts a room into a space (or moves it there) with the given order.
func (c *Connector) setSpaceChild(ctx context.Context, space, room id.RoomID, order string) error {
	_, err := c.Bridge.Bot.SendState(ctx, space, event.StateSpaceChild, room.String(), &event.Content{
		Parsed: &event.SpaceChildEventContent{Via: []string{c.Bridge.Matrix.ServerName()}, Order: order},
	}, time.Time{})
	return err
}

// updateSpaceOrder moves the conversation to its place in each of its team spaces.
func (c *Connector) updateSpaceOrder(ctx context.Context, portal *bridgev2.Portal, conv *cbdb.Conversation) {
	if portal == nil || portal.MXID == "" {
		return
	}
	for _, team := range c.teamsOf(conv.ClinicPhone) {
		space, err := c.teamSpace(ctx, team)
		if err == nil {
			err = c.setSpaceChild(ctx, space, portal.MXID, workflow.SpaceOrder(conv))
		}
		if err != nil {
			zerolog.Ctx(ctx).Err(err).Str("team", team.Name).Msg("Failed to update the conversation's place in the team's space")
		}
	}
}
