package securechat

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

// gpsMarker stands for the position a phone writes into a photo's EXIF.
const gpsMarker = "GPS 47.6062N 122.3321W"

// phonePhoto draws a w×h picture with a phone photo's texture (gradients and sensor
// noise) and encodes it as a JPEG at a phone camera's quality; the left third is red and
// the top third green, so a test can tell which way up it is.
func phonePhoto(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	rng := rand.New(rand.NewPCG(1, 2))
	// Texture at the scale a preview keeps (leaves, fabric, skin): blocks of 16 px.
	const block = 16
	bw := (w + block - 1) / block
	texture := make([]int, bw*((h+block-1)/block))
	for i := range texture {
		texture[i] = int(rng.IntN(41)) - 20
	}
	for y := range h {
		for x := range w {
			r, g, b := uint8(90+x*80/w), uint8(110+y*60/h), uint8(140)
			switch {
			case y < h/3:
				r, g, b = 30, 200, 40
			case x < w/3:
				r, g, b = 210, 30, 30
			}
			n := int(rng.IntN(17)) - 8 + texture[(y/block)*bw+x/block]
			yy, cb, cr := color.RGBToYCbCr(clamp(int(r)+n), clamp(int(g)+n), clamp(int(b)+n))
			img.Y[img.YOffset(x, y)] = yy
			img.Cb[img.COffset(x, y)], img.Cr[img.COffset(x, y)] = cb, cr
		}
	}
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, &jpeg.Options{Quality: 92}))
	return buf.Bytes()
}

func clamp(v int) uint8 { return uint8(min(255, max(0, v))) }

// withPhoneMetadata puts what a phone writes into a JPEG: EXIF with an orientation and a
// GPS block, XMP repeating the position, a comment, and a second image after the end (MPF).
func withPhoneMetadata(t testing.TB, photo []byte, orientation int) []byte {
	t.Helper()
	require.Equal(t, []byte{0xFF, 0xD8}, photo[:2])
	// TIFF, little-endian: IFD0 at 8 with Orientation and the GPS IFD pointer; the GPS IFD
	// holds one ASCII tag (GPSAreaInformation stand-in) whose value follows it.
	tiff := []byte{'I', 'I', 42, 0, 8, 0, 0, 0}
	le := binary.LittleEndian
	ifd0 := make([]byte, 2+2*12+4)
	le.PutUint16(ifd0, 2)
	le.PutUint16(ifd0[2:], 0x0112)
	le.PutUint16(ifd0[4:], 3)
	le.PutUint32(ifd0[6:], 1)
	le.PutUint16(ifd0[10:], uint16(orientation))
	gpsAt := 8 + len(ifd0)
	le.PutUint16(ifd0[14:], 0x8825)
	le.PutUint16(ifd0[16:], 4)
	le.PutUint32(ifd0[18:], 1)
	le.PutUint32(ifd0[22:], uint32(gpsAt))
	value := append([]byte(gpsMarker), 0)
	gps := make([]byte, 2+12+4)
	le.PutUint16(gps, 1)
	le.PutUint16(gps[2:], 0x001C)
	le.PutUint16(gps[4:], 2)
	le.PutUint32(gps[6:], uint32(len(value)))
	le.PutUint32(gps[10:], uint32(gpsAt+len(gps)))
	tiff = append(append(append(tiff, ifd0...), gps...), value...)
	segment := func(marker byte, payload []byte) []byte {
		out := []byte{0xFF, marker, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
		return append(out, payload...)
	}
	var out []byte
	out = append(out, 0xFF, 0xD8)
	out = append(out, segment(0xE1, append([]byte("Exif\x00\x00"), tiff...))...)
	out = append(out, segment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>"+gpsMarker+"</x:xmpmeta>"))...)
	out = append(out, segment(0xE2, []byte("MPF\x00II*\x00"))...)
	out = append(out, segment(0xFE, []byte("taken at "+gpsMarker))...)
	out = append(out, photo[2:]...)
	// The depth map after the picture, with EXIF of its own.
	out = append(out, 0xFF, 0xD8)
	out = append(out, segment(0xE1, append([]byte("Exif\x00\x00"), tiff...))...)
	return append(out, 0xFF, 0xD9)
}

func decodeJPEG(t testing.TB, data []byte) image.Image {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	return img
}

func TestPreviewOfAPhonePhotoIsSmallAndUpright(t *testing.T) {
	photo := withPhoneMetadata(t, phonePhoto(t, 4032, 3024), 6) // held upright: stored on its side
	require.Greater(t, len(photo), 1<<20, "a phone photo is megabytes")

	preview, ok := makePreview("image/jpeg", photo)
	require.True(t, ok)
	require.NotNil(t, preview.Thumb)
	assert.Less(t, len(preview.Thumb), 80<<10, "tens of kilobytes")
	assert.Equal(t, []int{480, 640}, []int{preview.Width, preview.Height}, "upright: taller than wide")
	img := decodeJPEG(t, preview.Thumb)
	assert.Equal(t, image.Rect(0, 0, 480, 640), img.Bounds())
	// Orientation 6: the stored picture's left (red) is the upright picture's top.
	r, g, _, _ := img.At(240, 40).RGBA()
	assert.Greater(t, r>>8, uint32(150), "red on top")
	assert.Less(t, g>>8, uint32(100))
	// …and the stored top (green) is the upright right side.
	r, g, _, _ = img.At(460, 400).RGBA()
	assert.Greater(t, g>>8, uint32(150), "green on the right")
	assert.Less(t, r>>8, uint32(100))
	assert.NotContains(t, string(preview.Thumb), gpsMarker)
}

func TestPreviewKinds(t *testing.T) {
	small := webTestPNG(t, 300, 200)
	preview, ok := makePreview("image/png", small)
	require.True(t, ok)
	assert.Nil(t, preview.Thumb, "a small photo is shown as it is")
	assert.Equal(t, []int{300, 200}, []int{preview.Width, preview.Height})

	wide := webTestPNG(t, 1600, 400)
	preview, ok = makePreview("image/png", wide)
	require.True(t, ok)
	assert.Equal(t, []int{640, 160}, []int{preview.Width, preview.Height})
	assert.Equal(t, image.Rect(0, 0, 640, 160), decodeJPEG(t, preview.Thumb).Bounds())

	_, ok = makePreview("image/heic", []byte("\x00\x00\x00\x18ftypheic"))
	assert.False(t, ok, "HEIC is offered as a file")
	_, ok = makePreview("image/jpeg", []byte("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"))
	assert.False(t, ok, "bytes that do not decode")

	// A decompression bomb is not decoded: its header alone says it is too large.
	bomb := phonePhoto(t, 16, 16)
	sof := bytes.Index(bomb, []byte{0xFF, 0xC0})
	require.Positive(t, sof)
	binary.BigEndian.PutUint16(bomb[sof+5:], 30000)
	binary.BigEndian.PutUint16(bomb[sof+7:], 30000)
	_, ok = makePreview("image/jpeg", bomb)
	assert.False(t, ok)
}

func TestStripJPEGMetadataKeepsThePictureAndOrientation(t *testing.T) {
	plain := phonePhoto(t, 64, 48)
	for _, orientation := range []int{1, 6, 8} {
		photo := withPhoneMetadata(t, plain, orientation)
		require.Contains(t, string(photo), gpsMarker)
		stripped, err := stripJPEGMetadata(photo)
		require.NoError(t, err)
		assert.NotContains(t, string(stripped), gpsMarker, "no position, in EXIF, XMP, comments or the image after")
		assert.NotContains(t, string(stripped), "http://ns.adobe.com")
		assert.NotContains(t, string(stripped), "MPF\x00")
		assert.Equal(t, orientation, jpegOrientation(stripped), "the orientation is kept")
		assert.Equal(t, []byte{0xFF, 0xD9}, stripped[len(stripped)-2:], "ends with the picture")
		assert.Equal(t, decodeJPEG(t, plain), decodeJPEG(t, stripped), "the same pixels")
		again, err := stripJPEGMetadata(stripped)
		require.NoError(t, err)
		assert.Equal(t, stripped, again, "stripping twice changes nothing more")
	}

	_, err := stripJPEGMetadata([]byte("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"))
	assert.ErrorIs(t, err, errNotJPEG)
	_, err = stripJPEGMetadata([]byte("GIF89a"))
	assert.ErrorIs(t, err, errNotJPEG)
}

func TestUploadedJPEGIsStrippedBeforeStorageAndStaff(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		c := e.newClient()
		csrf := csrfOf(t, c.signIn().Body)
		photo := withPhoneMetadata(t, phonePhoto(t, 800, 600), 1)
		res := c.upload(csrf, filePart{"file", "IMG_0042.JPG", "image/jpeg", photo})
		require.Equal(t, 303, res.Status, res.Body)
		calls := e.backend.patientCalls()
		require.Len(t, calls, 1)
		assert.NotContains(t, string(calls[0].Data), gpsMarker, "staff get the photo without its position")
		rows := e.storedMessages()
		require.Len(t, rows, 1)
		row, err := e.db.Secure.Get(context.Background(), rows[0].ID, e.conv.LoginID, e.conv.PortalID)
		require.NoError(t, err)
		stored, err := e.svc.Keys.Open(row.KeyID, row.Data, additional(e.conv, "data"))
		require.NoError(t, err)
		assert.Equal(t, calls[0].Data, stored, "and so does the database")
		assert.NotContains(t, string(stored), gpsMarker)
		assert.Equal(t, int64(len(stored)), rows[0].Size)
	})
}

func FuzzStripJPEGMetadata(f *testing.F) {
	f.Add(withPhoneMetadata(f, phonePhoto(f, 16, 16), 6))
	f.Add([]byte("\xFF\xD8\xFF\xE1\x00\x08Exif\x00\x00\xFF\xDA\x00\x02\xFF\xD9"))
	f.Add([]byte("\xFF\xD8\xFF\xDA\x00\x02\x12\xFF\x00\xFF\xD0\xFF\xD9"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := stripJPEGMetadata(data)
		if err != nil {
			return
		}
		_ = jpegOrientation(out)
		again, err := stripJPEGMetadata(out)
		if err != nil {
			t.Fatalf("stripped output does not strip again: %v", err)
		}
		if !bytes.Equal(out, again) {
			t.Fatalf("stripping is not idempotent")
		}
	})
}

func TestPreviewIsResealedByKeyRotation(t *testing.T) {
	eachWebDB(t, webEnvOptions{}, func(t *testing.T, e *webEnv) {
		ctx := context.Background()
		photo := phonePhoto(t, 1600, 1200)
		msg, err := e.svc.AddStaffMessage(ctx, e.conv, testNurse, testStaffName, database.SecureImage,
			"rash.jpg", "image/jpeg", photo, "$p")
		require.NoError(t, err)
		sess := &Session{Conversation: e.conv, Hash: strings.Repeat("0", 64)}
		before, err := e.svc.Preview(ctx, sess, msg.ID)
		require.NoError(t, err)

		k1, err := base64.StdEncoding.DecodeString(e.svc.Config.EncryptionKey)
		require.NoError(t, err)
		rotated, err := NewKeyringOf("k2", map[string][]byte{"k1": k1, "k2": []byte("fedcba9876543210fedcba9876543210")})
		require.NoError(t, err)
		result, err := RotateMessages(ctx, e.db, rotated, RotateOptions{})
		require.NoError(t, err)
		assert.Equal(t, 1, result.Total())
		// Only k2 is left: the preview opens with it.
		e.svc.Keys, err = NewKeyringOf("k2", map[string][]byte{"k2": []byte("fedcba9876543210fedcba9876543210")})
		require.NoError(t, err)
		after, err := e.svc.Preview(ctx, sess, msg.ID)
		require.NoError(t, err)
		assert.Equal(t, before, after)
		_, data, err := e.svc.File(ctx, sess, msg.ID)
		require.NoError(t, err)
		assert.Equal(t, photo, data)
	})
}
