package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"

	"github.com/carebridge/carebridge/sms"
)

// mediaAttempts is how many deliveries of one text may fail on a media download before
// the text goes into the room with a notice in place of the attachment.
const mediaAttempts = 5

// convertInbound turns a patient's SMS or MMS into Matrix messages from the patient's
// ghost: the text first, then each attachment, downloaded from Twilio and uploaded as
// (encrypted) Matrix media, in the order Twilio listed them.
func (cl *Client) convertInbound(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, in *sms.Inbound, attempts int) (*bridgev2.ConvertedMessage, error) {
	cm := &bridgev2.ConvertedMessage{}
	if in.Body != "" {
		cm.Parts = append(cm.Parts, &bridgev2.ConvertedMessagePart{
			Type:    event.EventMessage,
			Content: &event.MessageEventContent{MsgType: event.MsgText, Body: in.Body},
		})
	}
	for i, media := range in.Media {
		partID := networkid.PartID(fmt.Sprintf("media-%d", i))
		content, err := cl.convertMedia(ctx, portal, intent, media)
		if err != nil {
			if !mediaErrorIsFinal(err) && attempts+1 < mediaAttempts {
				return nil, fmt.Errorf("failed to bridge attachment %d: %w", i, err)
			}
			zerolog.Ctx(ctx).Warn().Err(err).Int("media_index", i).Msg("Giving up on an inbound attachment")
			content = &event.MessageEventContent{
				MsgType: event.MsgNotice,
				Body:    fmt.Sprintf("The patient sent an attachment (%s) that could not be downloaded from Twilio.", media.ContentType),
			}
		}
		cm.Parts = append(cm.Parts, &bridgev2.ConvertedMessagePart{ID: partID, Type: event.EventMessage, Content: content})
	}
	return cm, nil
}

func (cl *Client) convertMedia(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, media sms.Media) (*event.MessageEventContent, error) {
	fetched, err := cl.Media.Fetch(ctx, media.URL)
	if err != nil {
		return nil, err
	}
	mxc, file, err := intent.UploadMedia(ctx, portal.MXID, fetched.Data, fetched.FileName, fetched.ContentType)
	if err != nil {
		return nil, fmt.Errorf("failed to upload attachment to Matrix: %w", err)
	}
	content := &event.MessageEventContent{
		MsgType:  mediaMsgType(fetched.ContentType),
		Body:     fetched.FileName,
		FileName: fetched.FileName,
		Info:     &event.FileInfo{MimeType: fetched.ContentType, Size: len(fetched.Data)},
	}
	if file != nil {
		// In encrypted rooms the upload returns the URL inside the file info.
		if mxc != "" {
			file.URL = mxc
		}
		content.File = file
	} else {
		content.URL = mxc
	}
	return content, nil
}

// mediaErrorIsFinal reports download failures that retrying cannot mend.
func mediaErrorIsFinal(err error) bool {
	return errors.Is(err, sms.ErrMediaURLNotAllowed) || errors.Is(err, sms.ErrMediaTooLarge) || errors.Is(err, sms.ErrMediaRedirect)
}

func mediaMsgType(contentType string) event.MessageType {
	switch {
	case strings.HasPrefix(contentType, "image/"):
		return event.MsgImage
	case strings.HasPrefix(contentType, "video/"):
		return event.MsgVideo
	case strings.HasPrefix(contentType, "audio/"):
		return event.MsgAudio
	default:
		return event.MsgFile
	}
}
