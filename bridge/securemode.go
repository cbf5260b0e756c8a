package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/event"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/conversation"
	cbdb "github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/securechat"
	"github.com/carebridge/carebridge/workflow"
)

// secureMessagePrefix marks, in the room, what the patient sent through the secure chat.
const secureMessagePrefix = "🔒 "

// secureBackend is the bridge side of secure mode for the securechat service.
type secureBackend struct{ c *Connector }

var _ securechat.Backend = secureBackend{}

func (b secureBackend) login(conv *cbdb.Conversation) (*bridgev2.UserLogin, error) {
	login := b.c.Bridge.GetCachedUserLoginByID(networkid.UserLoginID(conv.LoginID))
	if login == nil {
		return nil, fmt.Errorf("clinic number %s is not linked", conv.LoginID)
	}
	return login, nil
}

// SendSMS texts a one-time code at once (the patient is waiting for it), through the
// outbox without storing it, unless they opted out.
func (b secureBackend) SendSMS(ctx context.Context, conv *cbdb.Conversation, text string) error {
	_, err := b.c.Conversations.TextNow(ctx, conv, outbox.KindCode, text)
	if errors.Is(err, outbox.ErrOptedOut) {
		return ErrOptedOut
	}
	return err
}

// PatientMessage puts a message the patient sent through the secure chat into the room.
func (b secureBackend) PatientMessage(ctx context.Context, conv *cbdb.Conversation, msg *securechat.Message, data []byte) (string, error) {
	login, err := b.login(conv)
	if err != nil {
		return "", err
	}
	key := networkid.PortalKey{ID: networkid.PortalID(conv.PortalID), Receiver: login.ID}
	base := "secure-" + strconv.FormatInt(msg.ID, 10)
	messageID := networkid.MessageID(base)
	portal, err := b.c.Bridge.GetExistingPortalByKey(ctx, key)
	if err != nil {
		return "", fmt.Errorf("failed to get portal: %w", err)
	} else if portal == nil {
		return "", fmt.Errorf("conversation %s has no room", conv.PortalID)
	}
	ghost, err := b.c.patientGhost(ctx, conv.PatientPhone)
	if err != nil {
		return "", err
	}
	send, err := b.c.prepareStableSend(ctx, login, portal, ghost, base, msg.CreatedAt, securechat.IsRedelivery(ctx))
	if err != nil {
		return "", err
	}
	b.c.Responses.Waiting(ctx, conv.LoginID, conv.PortalID)
	res := b.c.queueAndWait(ctx, login, &simplevent.Message[*securechat.Message]{
		EventMeta: simplevent.EventMeta{
			Type:      bridgev2.RemoteEventMessage,
			PortalKey: key,
			Sender:    bridgev2.EventSender{Sender: ghost.ID},
			Timestamp: msg.CreatedAt,
			MutateContextFunc: func(ctx context.Context) context.Context {
				return withStableSend(ctx, send)
			},
		},
		Data: msg,
		ID:   messageID,
		ConvertMessageFunc: func(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, msg *securechat.Message) (*bridgev2.ConvertedMessage, error) {
			return convertSecure(ctx, portal, intent, msg, data)
		},
	})
	if !res.Success {
		b.c.forgetPartialDelivery(ctx, login, base)
		if res.Error != nil {
			return "", res.Error
		}
		return "", errNotDelivered
	}
	part, err := b.c.Bridge.DB.Message.GetFirstPartByID(ctx, login.ID, messageID)
	if err != nil || part == nil {
		return "", err
	}
	if msg.Kind == cbdb.SecureText {
		b.c.onPatientText(ctx, portal, msg.Text)
	}
	b.c.apiEvent(ctx, portal, func(conv *cbdb.Conversation) {
		text, attachments := msg.Text, 0
		if msg.Kind != cbdb.SecureText {
			text, attachments = "", 1
		}
		b.c.API.PatientReplied(ctx, conv, cbdb.ModeSecure, text, attachments)
	})
	return part.MXID.String(), nil
}

func convertSecure(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, msg *securechat.Message, data []byte) (*bridgev2.ConvertedMessage, error) {
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: secureMessagePrefix + msg.Text}
	if msg.Kind != cbdb.SecureText {
		mxc, file, err := intent.UploadMedia(ctx, portal.MXID, data, msg.Text, msg.ContentType)
		if err != nil {
			return nil, fmt.Errorf("failed to upload secure attachment: %w", err)
		}
		content = &event.MessageEventContent{
			MsgType:  mediaMsgType(msg.ContentType),
			Body:     msg.Text,
			FileName: msg.Text,
			Info:     &event.FileInfo{MimeType: msg.ContentType, Size: len(data)},
		}
		if file != nil {
			if mxc != "" {
				file.URL = mxc
			}
			content.File = file
		} else {
			content.URL = mxc
		}
	}
	return &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{
		Type:    event.EventMessage,
		Content: content,
		Extra:   map[string]any{"com.carebridge.secure": true},
	}}}, nil
}

// PatientRead shows, in the room, that the patient has read staff messages up to newest.
func (b secureBackend) PatientRead(ctx context.Context, conv *cbdb.Conversation, newest *securechat.Message) error {
	if b.c.API != nil {
		b.c.API.PatientRead(ctx, conv, newest.ID, time.Now())
	}
	login, err := b.login(conv)
	if err != nil {
		return err
	}
	ghostID, err := b.c.patientUserID(ctx, conv.PatientPhone)
	if err != nil {
		return err
	}
	res := b.c.Bridge.QueueRemoteEvent(login, &simplevent.Receipt{
		EventMeta: simplevent.EventMeta{
			Type:      bridgev2.RemoteEventReadReceipt,
			PortalKey: networkid.PortalKey{ID: networkid.PortalID(conv.PortalID), Receiver: login.ID},
			Sender:    bridgev2.EventSender{Sender: ghostID},
			Timestamp: time.Now(),
		},
		LastTarget: networkid.MessageID("secure-" + strconv.FormatInt(newest.ID, 10)),
	})
	if !res.Success {
		return res.Error
	}
	return nil
}

// ---- staff side ------------------------------------------------------------------

// handleSecureMessage keeps a staff message for the web chat instead of texting it, and
// texts the patient an alert with a link (at most one per quiet period).
func (cl *Client) handleSecureMessage(ctx context.Context, msg *bridgev2.MatrixMessage, conv *cbdb.Conversation) (*bridgev2.MatrixMessageResponse, error) {
	c := cl.Connector
	sender := cl.senderName(ctx, msg, conv)
	// The original content: relay mode rewrote msg.Content as "Name: text" for SMS, while
	// the secure chat shows the sender's name apart.
	content := msg.Event.Content.AsMessage()
	if content == nil || content.MsgType == "" {
		content = msg.Content
	}
	kind, text, contentType := cbdb.SecureText, conversation.PatientText(ctx, content), ""
	var data []byte
	if content.MsgType.IsMedia() {
		kind = cbdb.SecureFile
		if content.MsgType == event.MsgImage {
			kind = cbdb.SecureImage
		}
		text = content.FileName
		if text == "" {
			text = content.Body
		}
		if content.Info != nil {
			contentType = content.Info.MimeType
		}
		uri := content.URL
		if content.File != nil {
			uri = content.File.URL
		}
		var err error
		if data, err = c.Bridge.Bot.DownloadMedia(ctx, uri, content.File); err != nil {
			return nil, fmt.Errorf("failed to download the attachment for the secure chat: %w", err)
		}
	}
	stored, err := c.Secure.AddStaffMessage(ctx, conv, cbdb.StaffActor(msg.Event.Sender), sender, kind, text, contentType, data, msg.Event.ID.String())
	if err != nil {
		return nil, err
	}
	if !stored.KeptBefore {
		c.Alerter.StaffMessageKept(ctx, conv)
	}
	c.onStaffReply(ctx, msg.Portal, msg.Event.Sender)
	return &bridgev2.MatrixMessageResponse{DB: &database.Message{
		ID:        networkid.MessageID("secure-" + strconv.FormatInt(stored.ID, 10)),
		SenderID:  MakeClinicUserID(cl.meta().Phone),
		Timestamp: time.Now(),
	}}, nil
}

// senderName is how the patient sees a staff member: their display name in the room
// (relayed staff through the relay's view of them, the account that linked the number,
// which bridgev2 does not relay, through the room's member list); the secure chat adds
// the role from secure_chat.pages.staff_roles and the clinic.
func (cl *Client) senderName(ctx context.Context, msg *bridgev2.MatrixMessage, conv *cbdb.Conversation) string {
	switch {
	case msg.OrigSender != nil && msg.OrigSender.DisambiguatedName != "":
		return msg.OrigSender.DisambiguatedName
	case msg.OrigSender != nil:
		return msg.OrigSender.UserID.Localpart()
	}
	return conversationRooms{cl.Connector}.StaffName(ctx, conv, msg.Event.Sender.String())
}

// updateConversationState shows the conversation in its room — name, topic and the
// com.carebridge.conversation state — through bridgev2, which keeps the portal's stored
// name and topic what the room shows.
func (c *Connector) updateConversationState(ctx context.Context, portal *bridgev2.Portal, conv *cbdb.Conversation) {
	if portal == nil || portal.MXID == "" {
		return
	}
	look, err := c.roomLook(ctx, portal, conv)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to show the conversation in its room")
		return
	}
	portal.UpdateInfo(ctx, c.lookInfo(look), nil, nil, time.Time{})
}

// roomLook is how the conversation's room looks now (appservice.Rooms.LookNow), with the
// clinic number it is on and the workflow's marks.
func (c *Connector) roomLook(ctx context.Context, portal *bridgev2.Portal, conv *cbdb.Conversation) (appservice.Look, error) {
	in := appservice.LookInput{Conv: conv, NamePrefix: workflow.RoomName("", conv.Urgent)}
	if login := c.Bridge.GetCachedUserLoginByID(portal.Receiver); login != nil {
		in.Through = login.RemoteName
	}
	if portal.MXID != "" {
		in.TopicSuffix = c.workflowTopic(ctx, portal, conv)
	}
	return c.Rooms.LookNow(ctx, in)
}

// lookInfo is a room look as bridgev2's ChatInfo: the name and topic bridgev2 sets (when
// they changed) and stores, and the conversation state event.
func (c *Connector) lookInfo(look appservice.Look) *bridgev2.ChatInfo {
	return &bridgev2.ChatInfo{Name: &look.Name, Topic: &look.Topic,
		ExtraUpdates: func(ctx context.Context, portal *bridgev2.Portal) bool {
			if portal.MXID == "" {
				return false // the room's creation sets it up; the state follows
			}
			_, err := c.Bridge.Bot.SendState(ctx, portal.MXID, appservice.StateConversation, "", &event.Content{Parsed: look.State}, time.Time{})
			if err != nil {
				zerolog.Ctx(ctx).Err(err).Msg("Failed to update conversation state event")
			}
			return false
		}}
}

// conversationOf returns the conversation of a portal.
func (c *Connector) conversationOf(ctx context.Context, portal *bridgev2.Portal) (*cbdb.Conversation, error) {
	conv, err := c.DB.Conversation.Get(ctx, string(portal.Receiver), string(portal.ID))
	if err != nil {
		return nil, err
	} else if conv == nil {
		return nil, errors.New("this room is not a patient conversation")
	}
	return conv, nil
}
