package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

func testJPEG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for x := range 64 {
		for y := range 48 {
			img.Set(x, y, color.RGBA{R: uint8(x * 4), G: uint8(y * 5), B: 120, A: 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, nil))
	return buf.Bytes()
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestMMSInbound: a patient's MMS (text, a photo and a PDF) arrives in the room as the
// text followed by encrypted Matrix media, in order; nio decrypts the exact bytes.
func TestMMSInbound(t *testing.T) { eachHomeserver(t, runMMSInbound) }

func runMMSInbound(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	var err error

	photo := testJPEG(t)
	pdf := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("insurance card scan "), 200)...)
	photoURL := e.fake.AddMedia("image/jpeg", photo)
	pdfURL := e.fake.AddMedia("application/pdf", pdf)
	res, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Here is the rash and my insurance card", photoURL, pdfURL)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, res.Body)

	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	// The agent reports a media message once it has downloaded and decrypted the file, so
	// the three may reach its list in another order (and the parts of one MMS share their
	// timestamp): wait for all, then put them in the room's order, as the server gives it.
	ghost := e.patientGhost(t, ctx, patient)
	fromPatient := func() map[string]testenv.AgentMessage {
		got := map[string]testenv.AgentMessage{}
		for _, m := range nurse.Messages() {
			if m.RoomID == roomID && m.Sender == ghost {
				got[m.EventID] = m
			}
		}
		return got
	}
	require.Eventually(t, func() bool { return len(fromPatient()) >= 3 }, time.Minute, 50*time.Millisecond,
		"the text, the photo and the PDF reach the nurse")
	byEvent := fromPatient()
	var timeline struct {
		Chunk []struct {
			EventID string `json:"event_id"`
			Sender  string `json:"sender"`
		} `json:"chunk"`
	}
	matrixGet(t, e.hs.URL(), matrixLogin(t, e.hs.URL(), "nurse", "nurse-password-1"),
		"/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/messages?dir=b&limit=100", &timeline)
	var got []testenv.AgentMessage
	for _, ev := range slices.Backward(timeline.Chunk) {
		if m, ok := byEvent[ev.EventID]; ok {
			got = append(got, m)
		}
	}
	require.Len(t, got, 3)
	file := got[2]
	assert.Equal(t, "m.file", file.MsgType)
	assert.Equal(t, "m.text", got[0].MsgType)
	assert.Equal(t, "Here is the rash and my insurance card", got[0].Body)
	img := got[1]
	assert.Equal(t, "m.image", img.MsgType)
	assert.Equal(t, "image/jpeg", img.MimeType)
	assert.Empty(t, img.MediaError)
	assert.True(t, img.Encrypted && img.MediaEncrypted, "the event and the file are encrypted")
	assert.Equal(t, sha256Hex(photo), img.MediaSHA256)
	assert.Equal(t, len(photo), img.MediaSize)
	assert.Less(t, got[0].ServerTS, img.ServerTS+1, "text before media")
	assert.Equal(t, "application/pdf", file.MimeType)
	assert.Equal(t, sha256Hex(pdf), file.MediaSHA256)
	assert.True(t, file.MediaEncrypted)
}

// TestMMSOutbound: staff send a photo; Twilio gets a link that serves exactly that photo
// and nothing else, and stops working when it expires. Types and sizes carriers refuse,
// and texts longer than max_segments, get a notice instead of being sent.
func TestMMSOutbound(t *testing.T) { eachHomeserver(t, runMMSOutbound) }

func runMMSOutbound(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, func(cfg map[string]any) {
		cfg["network"].(map[string]any)["twilio"].(map[string]any)["media_url_lifetime"] = "3s"
	})
	var err error
	_, err = e.fake.SendInbound(ctx, patient, clinicPhone, "Can you send me the exercise sheet?")
	require.NoError(t, err)
	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)

	photo := testJPEG(t)
	_, err = nurse.SendFile(ctx, roomID, "exercises.jpg", "image/jpeg", photo)
	require.NoError(t, err)
	mms, err := e.fake.WaitForMessage(ctx, func(m testenv.FakeMessage) bool { return len(m.MediaURLs) > 0 })
	require.NoError(t, err)
	assert.Equal(t, "nurse sent an image", mms.Body)
	require.Len(t, mms.MediaURLs, 1)
	link := mms.MediaURLs[0]
	assert.True(t, strings.HasPrefix(link, e.br.URL()+"/_carebridge/media/"), link)

	// Twilio fetches the link: exactly the photo, decrypted from the homeserver.
	resp, err := http.Get(link)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
	assert.Equal(t, sha256Hex(photo), sha256Hex(body))

	// Nothing else is served: a changed token, or no token.
	tampered := strings.Replace(link, "/media/", "/media/0", 1)
	tampered = strings.Replace(tampered, tampered[len(e.br.URL()+"/_carebridge/media/")+48:], "/exercises.jpg", 1)
	for _, u := range []string{tampered, e.br.URL() + "/_carebridge/media/", e.br.URL() + "/_carebridge/media/x/y"} {
		resp, err := http.Get(u)
		require.NoError(t, err)
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, u)
	}

	// Refused before reaching Twilio: a ZIP file, a 6 MB image, a 12-segment text.
	before := len(e.fake.Messages())
	_, err = nurse.SendFile(ctx, roomID, "records.zip", "application/zip", []byte("PK\x03\x04 not really"))
	require.NoError(t, err)
	notice(t, ctx, nurse, "unsupported media type")
	_, err = nurse.SendFile(ctx, roomID, "scan.jpg", "image/jpeg", bytes.Repeat([]byte{0xff}, 6<<20))
	require.NoError(t, err)
	notice(t, ctx, nurse, "media too large")
	_, _, err = nurse.Send(ctx, roomID, strings.Repeat("Take one tablet twice a day with food. ", 50))
	require.NoError(t, err)
	notice(t, ctx, nurse, "SMS segments (GSM-7), more than the limit of 10")
	_, _, err = nurse.Send(ctx, roomID, strings.Repeat("💊", 350))
	require.NoError(t, err)
	notice(t, ctx, nurse, "SMS segments (UCS-2), more than the limit of 10")
	assert.Len(t, e.fake.Messages(), before, "nothing refused reached Twilio")

	// The link expires (3 s in this test, 1 h by default).
	time.Sleep(3500 * time.Millisecond)
	resp, err = http.Get(link)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "an expired link serves nothing")
}

// notice waits for the bridge's notice containing contains; every notice the bridge posts
// into an encrypted room is encrypted (the homeserver never holds its words in clear).
func notice(t *testing.T, ctx context.Context, a *testenv.StaffAgent, contains string) {
	t.Helper()
	m, err := a.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
		return m.MsgType == "m.notice" && strings.Contains(m.Body, contains)
	})
	require.NoError(t, err, "notice containing %q", contains)
	assert.True(t, m.Encrypted, "notice %q is end-to-end encrypted", m.Body)
}
