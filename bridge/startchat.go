package bridge

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

var (
	_ bridgev2.IdentifierResolvingNetworkAPI = (*Client)(nil)
	_ bridgev2.GhostDMCreatingNetworkAPI     = (*Client)(nil)
	_ bridgev2.IdentifierValidatingNetwork   = (*Connector)(nil)
)

// ValidateUserID is called before a ghost ID from a Matrix user ID is used: only the
// shape of a patient's opaque ID can be a patient.
func (c *Connector) ValidateUserID(id networkid.UserID) bool {
	return IsPatientID(id)
}

// ResolveIdentifier is called by `start-chat`, `resolve-identifier` and the provisioning
// API with a phone number in any form the region allows. Every form of one number maps
// to one E.164 ghost and one conversation room.
func (cl *Client) ResolveIdentifier(ctx context.Context, identifier string, createChat bool) (*bridgev2.ResolveIdentifierResponse, error) {
	phone, err := sms.NormalizePhone(identifier, cl.Connector.Config.DefaultRegion)
	if err != nil {
		return nil, bridgev2.RespError(mautrix.MInvalidParam.WithMessage("%q is not a phone number this clinic can text", identifier)).
			WithInternalError(err)
	}
	if phone == cl.meta().Phone {
		return nil, bridgev2.RespError(mautrix.MInvalidParam.WithMessage("%s is the clinic's own number", phone))
	}
	return cl.resolvePhone(ctx, phone, createChat)
}

// CreateChatWithGhost is called when staff start a chat with a ghost's Matrix ID: the
// ghost of a patient this bridge knows.
func (cl *Client) CreateChatWithGhost(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.CreateChatResponse, error) {
	phone, err := cl.Connector.patientPhoneOf(ctx, ghost.ID)
	if err != nil {
		return nil, err
	} else if phone == "" {
		return nil, bridgev2.RespError(mautrix.MNotFound.WithMessage("%s is no patient of this clinic", ghost.Intent.GetMXID()))
	}
	resp, err := cl.resolvePhone(ctx, phone, true)
	if err != nil {
		return nil, err
	}
	return resp.Chat, nil
}

func (cl *Client) resolvePhone(ctx context.Context, phone string, createChat bool) (*bridgev2.ResolveIdentifierResponse, error) {
	ghost, err := cl.Connector.patientGhost(ctx, phone)
	if err != nil {
		return nil, err
	}
	resp := &bridgev2.ResolveIdentifierResponse{Ghost: ghost, UserID: ghost.ID}
	resp.UserInfo, _ = cl.GetUserInfo(ctx, ghost)
	if !createChat {
		return resp, nil
	}
	portal, created, err := cl.Connector.openConversation(ctx, cl.UserLogin, phone)
	if err != nil {
		return nil, err
	} else if created {
		markCreatedDM(ctx) // provisioning.go
	}
	resp.Chat = &bridgev2.CreateChatResponse{PortalKey: portal.PortalKey, Portal: portal}
	return resp, nil
}

// clinicLogins are the linked clinic numbers.
func (c *Connector) clinicLogins() []*bridgev2.UserLogin {
	var logins []*bridgev2.UserLogin
	for _, login := range c.Bridge.GetAllCachedUserLogins() {
		if meta, ok := login.Metadata.(*UserLoginMetadata); ok && meta.Phone != "" {
			if _, ok = login.Client.(*Client); ok {
				logins = append(logins, login)
			}
		}
	}
	return logins
}

// startConversation opens a patient's conversation at a clinic number for a staff member or
// an integration (actor, shown as actorName; via says how, for the audit). A new one is
// audited and its room says who started it; created says whether it is new.
func (c *Connector) startConversation(ctx context.Context, login *bridgev2.UserLogin, patient string, actor database.AuditActor, actorName, via string) (*bridgev2.Portal, bool, error) {
	portal, created, err := c.openConversation(ctx, login, patient)
	if err != nil || !created {
		return portal, created, err
	}
	conv, err := c.conversationOf(ctx, portal)
	if err != nil {
		return nil, false, err
	}
	if err = c.audited(ctx, convAudit(conv, actor, database.EventConversationStarted, database.OutcomeOK, via), nil); err != nil {
		return nil, false, err
	}
	c.sendNotice(ctx, portal, fmt.Sprintf("%s started this conversation.", actorName))
	return portal, true, nil
}
