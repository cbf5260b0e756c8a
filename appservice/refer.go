package appservice

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
)

// Referrals: staff invite a colleague of another organisation into a conversation over
// federation, when their server is on federation.allowed_servers.

var (
	// ErrServerNotAllowed refuses a referral to a server not on the allow-list (audited).
	ErrServerNotAllowed = errors.New("the server is not on this clinic's federation allow-list")
	// ErrReferralNotAudited is returned when the colleague is invited but the referral
	// could not be written to the audit log.
	ErrReferralNotAudited = errors.New("invited, but the referral could not be written to the audit log")
)

// NotInvitedError is returned by Refer when the homeserver refused the invite.
type NotInvitedError struct{ Err error }

func (e *NotInvitedError) Error() string { return e.Err.Error() }
func (e *NotInvitedError) Unwrap() error { return e.Err }

// Refer invites target into the conversation's room for actor, audited: a user of a server
// that is not allowed is refused with ErrServerNotAllowed (the refusal audited too).
func (r *Rooms) Refer(ctx context.Context, room Room, actor database.AuditActor, target id.UserID) error {
	entry := &database.AuditEntry{Actor: actor, LoginID: room.Key.LoginID, PortalID: room.Key.PortalID,
		Event: database.EventReferred, Outcome: database.OutcomeOK, Detail: target.String()}
	if !r.Federation().ServerAllowed(target) {
		entry.Event, entry.Outcome = database.EventReferralRefused, database.OutcomeRefused
		if err := r.DB.Audited(ctx, entry, nil); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to audit a refused referral")
		}
		return ErrServerNotAllowed
	}
	if err := r.Bot.EnsureInvited(ctx, room.ID, target); err != nil {
		return &NotInvitedError{Err: err}
	}
	if err := r.DB.Audited(ctx, entry, nil); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to audit a referral")
		return ErrReferralNotAudited
	}
	return nil
}
