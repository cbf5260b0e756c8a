package bridge

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"

	"github.com/carebridge/carebridge/sms"
)

// GetChatInfo is called when a conversation room is created or refreshed: a DM between
// the clinic number (the login owner) and the patient's ghost.
func (cl *Client) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	patient := PhoneOf(portal.ID)
	name, err := cl.Connector.patientDisplayName(ctx, patient)
	if err != nil {
		return nil, err
	}
	// An urgent conversation keeps its 🚨 through a refresh.
	if conv, err := cl.Connector.DB.Conversation.Get(ctx, string(portal.Receiver), string(portal.ID)); err != nil {
		return nil, err
	} else if conv != nil {
		if name, err = cl.Connector.roomName(ctx, conv); err != nil {
			return nil, err
		}
	}
	topic := fmt.Sprintf("SMS conversation with %s through %s (%s)",
		cl.Connector.patientLabel(patient), cl.UserLogin.RemoteName, cl.Connector.Config.ClinicName)
	roomType := database.RoomTypeDM
	members := &bridgev2.ChatMemberList{
		IsFull:      true,
		OtherUserID: MakeUserID(patient),
		MemberMap:   bridgev2.ChatMemberMap{},
	}
	members.MemberMap.Set(bridgev2.ChatMember{EventSender: bridgev2.EventSender{IsFromMe: true, Sender: MakeUserID(cl.meta().Phone)}})
	members.MemberMap.Set(bridgev2.ChatMember{EventSender: bridgev2.EventSender{Sender: MakeUserID(patient)}})
	return &bridgev2.ChatInfo{
		Name:    &name,
		Topic:   &topic,
		Type:    &roomType,
		Members: members,
	}, nil
}

// GetUserInfo is called for a patient ghost without a profile: its name is the number.
func (cl *Client) GetUserInfo(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	phone := PhoneOf(ghost.ID)
	name, err := cl.Connector.patientDisplayName(ctx, phone)
	if err != nil {
		return nil, err
	}
	return &bridgev2.UserInfo{
		Identifiers: []string{"tel:" + phone},
		Name:        &name,
	}, nil
}

// patientDisplayName is the name staff gave the number, or the formatted number; only
// the number's last four digits when names are masked (privacy.mask_room_names).
func (c *Connector) patientDisplayName(ctx context.Context, phone string) (string, error) {
	if c.maskNames() {
		return maskedNumber(phone), nil
	}
	name, err := c.DB.Conversation.GetPatientName(ctx, phone)
	if err != nil {
		return "", fmt.Errorf("failed to read patient name: %w", err)
	}
	if name == "" {
		name = sms.FormatPhone(phone, c.Config.DefaultRegion)
	}
	return name, nil
}
