package bridge

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/status"

	cbdb "github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

// Client is one linked clinic number.
type Client struct {
	Connector *Connector
	UserLogin *bridgev2.UserLogin
	Provider  sms.Provider
	Media     *sms.MediaFetcher
}

var _ bridgev2.NetworkAPI = (*Client)(nil)

func (cl *Client) meta() *UserLoginMetadata {
	return cl.UserLogin.Metadata.(*UserLoginMetadata)
}

// Connect is called when the bridge starts and after linking. SMS has no connection to
// hold: it checks that the account still owns the number and reports the login's state.
func (cl *Client) Connect(ctx context.Context) {
	// The number's webhook must point here (the public address may have changed, or
	// someone edited it in the Twilio console); a wrong one loses every text.
	var want *sms.NumberWebhooks
	if cl.Connector.publicBase() != "" {
		hooks := cl.Connector.numberWebhooks(cl.UserLogin.ID)
		want = &hooks
	}
	err := outbox.CheckNumber(ctx, cl.Provider, cl.meta().Phone, want)
	switch {
	case err == nil:
		cl.UserLogin.BridgeState.Send(status.BridgeState{StateEvent: status.StateConnected})
		// At start and when the number is linked again: texts sent meanwhile are in the log.
		cl.Connector.catchUp.request(cl.UserLogin.ID, true)
	case errors.Is(err, sms.ErrNumberNotOwned), errors.Is(err, sms.ErrBadCredentials):
		zerolog.Ctx(ctx).Err(err).Msg("Twilio no longer accepts this clinic number's credentials")
		cl.UserLogin.BridgeState.Send(status.BridgeState{
			StateEvent: status.StateBadCredentials,
			Error:      "sms-number-not-owned",
			Message:    "The Twilio account no longer owns this number or its auth token changed: link the number again",
		})
	default:
		zerolog.Ctx(ctx).Err(err).Msg("Failed to check the clinic number with Twilio")
		cl.UserLogin.BridgeState.Send(status.BridgeState{
			StateEvent: status.StateTransientDisconnect,
			Error:      "sms-twilio-unreachable",
			Message:    "Twilio could not be reached to check the clinic number",
		})
	}
}

// Disconnect is called when the bridge stops; there is no connection to close.
func (cl *Client) Disconnect() {}

// IsLoggedIn reports the cached state; SMS logins stay valid until unlinked.
func (cl *Client) IsLoggedIn() bool { return true }

// LogoutRemote is called when staff unlink the number; Twilio keeps the number and its
// webhook, which then answers 404 until the number is linked again.
func (cl *Client) LogoutRemote(ctx context.Context) {
	err := cl.Connector.audited(ctx, &cbdb.AuditEntry{Actor: cbdb.StaffActor(cl.UserLogin.UserMXID), LoginID: string(cl.UserLogin.ID),
		Event: cbdb.EventLoginRemoved, Outcome: cbdb.OutcomeOK, Detail: "clinic number unlinked"}, nil)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to audit unlinking the clinic number")
	}
}

// IsThisUser is called to map a remote user to this login: the clinic number itself.
func (cl *Client) IsThisUser(ctx context.Context, userID networkid.UserID) bool {
	return userID == MakeClinicUserID(cl.meta().Phone)
}
