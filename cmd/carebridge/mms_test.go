package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/color"
	"image/jpeg"
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
func TestMMSInbound(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite, the bridge and matrix-nio")
	}
	testenv.RequireDep(t, testenv.DepNio, testenv.NioAvailable())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newEnv(t, "sqlite")
	_, err := e.br.LinkNumber(ctx, e.adminID, accountSID, authToken, clinicPhone)
	require.NoError(t, err)
	nurse := testenv.StartStaffAgent(t, e.hs.URL(), e.nurseID, "nurse-password-1")

	photo := testJPEG(t)
	pdf := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("insurance card scan "), 200)...)
	photoURL := e.fake.AddMedia("image/jpeg", photo)
	pdfURL := e.fake.AddMedia("application/pdf", pdf)
	res, err := e.fake.SendInbound(ctx, patient, clinicPhone, "Here is the rash and my insurance card", photoURL, pdfURL)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode, res.Body)

	roomID, err := nurse.WaitJoined(ctx, "")
	require.NoError(t, err)
	file, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool { return m.RoomID == roomID && m.MsgType == "m.file" })
	require.NoError(t, err)
	var got []testenv.AgentMessage
	for _, m := range nurse.Messages() {
		if m.RoomID == roomID && m.Sender == "@sms_15551234567:"+e.hs.ServerName() {
			got = append(got, m)
		}
	}
	require.Len(t, got, 3)
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
