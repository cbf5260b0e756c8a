package bridge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/sms"
)

// mediaPathPrefix is where Twilio fetches attachments staff send by MMS.
const mediaPathPrefix = "/_carebridge/media/"

// maxMMSBytes is the largest attachment Twilio sends by MMS.
const maxMMSBytes = 5 << 20

// mmsFeatures are the attachments carriers deliver by MMS: JPEG, PNG and GIF everywhere,
// a few other types where the handset supports them. Anything else, or anything larger
// than 5 MB, is refused by bridgev2 with a notice before it reaches carebridge.
var mmsFeatures = &event.FileFeatures{
	MimeTypes: map[string]event.CapabilitySupportLevel{
		"image/jpeg":      event.CapLevelFullySupported,
		"image/png":       event.CapLevelFullySupported,
		"image/gif":       event.CapLevelFullySupported,
		"application/pdf": event.CapLevelPartialSupport,
		"video/mp4":       event.CapLevelPartialSupport,
		"audio/mpeg":      event.CapLevelPartialSupport,
		"text/vcard":      event.CapLevelPartialSupport,
		"*/*":             event.CapLevelRejected,
	},
	Caption:          event.CapLevelFullySupported,
	MaxCaptionLength: sms.MaxBodyChars,
	MaxSize:          maxMMSBytes,
}

// stageMMS makes a staff attachment fetchable by Twilio: it records where the file is
// (on the homeserver) under the hash of a random token, and returns the URL with the
// token. Nothing else is ever served there, and the URL stops working after
// twilio.media_url_lifetime.
func (cl *Client) stageMMS(ctx context.Context, msg *bridgev2.MatrixMessage) (string, error) {
	content := msg.Content
	var mxc id.ContentURIString
	var fileInfo []byte
	if content.File != nil {
		mxc = content.File.URL
		var err error
		if fileInfo, err = json.Marshal(content.File); err != nil {
			return "", err
		}
	} else {
		mxc = content.URL
	}
	if mxc == "" {
		return "", fmt.Errorf("attachment has no media URL")
	}
	mimeType, size := "", 0
	if content.Info != nil {
		mimeType, size = content.Info.MimeType, content.Info.Size
	}
	if mimeType == "" || mmsFeatures.GetMimeSupport(mimeType).Reject() {
		return "", fmt.Errorf("%w: carriers do not deliver %q by MMS; send a JPEG, PNG or GIF", ErrUnsupportedMessage, mimeType)
	}
	if err := cl.Connector.DB.Media.DeleteExpired(ctx, time.Now()); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to forget expired attachment links")
	}
	token := make([]byte, 24)
	if _, err := rand.Read(token); err != nil {
		return "", err
	}
	tokenHex := hex.EncodeToString(token)
	fileName := content.FileName
	if fileName == "" {
		fileName = content.Body
	}
	err := cl.Connector.DB.Media.Insert(ctx, &database.OutboundMedia{
		TokenHash:   hashToken(tokenHex),
		ContentType: mimeType,
		FileName:    fileName,
		Size:        int64(size),
		MXC:         string(mxc),
		FileInfo:    string(fileInfo),
		ExpiresAt:   time.Now().Add(cl.Connector.Config.Twilio.MediaURLLifetime),
	})
	if err != nil {
		return "", fmt.Errorf("failed to stage attachment: %w", err)
	}
	return cl.Connector.publicBase() + mediaPathPrefix + tokenHex + "/" + url.PathEscape(fileName), nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// handleMedia serves a staged attachment to Twilio. An unknown, tampered or expired token
// gets 404 and nothing else; the token never appears in logs.
func (c *Connector) handleMedia(w http.ResponseWriter, r *http.Request) {
	log := c.Bridge.Log.With().Str("action", "serve mms attachment").Str("remote_addr", r.RemoteAddr).Logger()
	token := r.PathValue("token")
	if len(token) != 48 {
		http.NotFound(w, r)
		return
	}
	m, err := c.DB.Media.GetValid(r.Context(), hashToken(token), time.Now())
	if err != nil {
		log.Err(err).Msg("Failed to look up attachment")
		http.Error(w, "Temporarily unavailable", http.StatusServiceUnavailable)
		return
	} else if m == nil {
		log.Debug().Msg("Refused unknown or expired attachment link")
		http.NotFound(w, r)
		return
	}
	var file *event.EncryptedFileInfo
	if m.FileInfo != "" {
		file = &event.EncryptedFileInfo{}
		if err = json.Unmarshal([]byte(m.FileInfo), file); err != nil {
			log.Err(err).Msg("Stored attachment key is unreadable")
			http.NotFound(w, r)
			return
		}
	}
	data, err := c.Bridge.Bot.DownloadMedia(log.WithContext(r.Context()), id.ContentURIString(m.MXC), file)
	if err != nil {
		log.Err(err).Msg("Failed to download attachment from the homeserver")
		http.Error(w, "Temporarily unavailable", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", m.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(data)
	zerolog.Ctx(r.Context()).Debug().Int("size", len(data)).Msg("Served attachment")
}
