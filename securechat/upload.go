package securechat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/carebridge/carebridge/database"
)

// maxFileNameRunes is the longest file name kept for an upload.
const maxFileNameRunes = 100

// uploadType is what an upload's bytes turned out to be.
type uploadType struct {
	ContentType string
	Kind        database.SecureMessageKind
	Ext         string
}

// heifBrands are the ISO BMFF brands of HEIC/HEIF photos (what phones' cameras write).
var heifBrands = map[string]string{
	"heic": "image/heic", "heix": "image/heic", "hevc": "image/heic",
	"mif1": "image/heif", "msf1": "image/heif",
}

// sniffUpload tells an upload's type from its first bytes, never from what the browser
// declared: photos (JPEG, PNG, WebP, HEIC/HEIF) and PDF files. Anything else is refused.
func sniffUpload(data []byte) (uploadType, bool) {
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return uploadType{"image/jpeg", database.SecureImage, ".jpg"}, true
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return uploadType{"image/png", database.SecureImage, ".png"}, true
	case len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return uploadType{"image/webp", database.SecureImage, ".webp"}, true
	case bytes.HasPrefix(data, []byte("%PDF-")):
		return uploadType{"application/pdf", database.SecureFile, ".pdf"}, true
	}
	if contentType := heifType(data); contentType != "" {
		ext := ".heic"
		if contentType == "image/heif" {
			ext = ".heif"
		}
		return uploadType{contentType, database.SecureImage, ext}, true
	}
	return uploadType{}, false
}

// heifType reads an ISO BMFF "ftyp" box: its major brand, else a compatible brand,
// must be a HEIF brand.
func heifType(data []byte) string {
	if len(data) < 16 || string(data[4:8]) != "ftyp" {
		return ""
	}
	size := int(binary.BigEndian.Uint32(data[0:4]))
	if size < 16 || size > len(data) || size > 4096 {
		size = min(len(data), 4096)
	}
	if contentType := heifBrands[string(data[8:12])]; contentType != "" {
		return contentType
	}
	// Bytes 12-16 are the minor version; compatible brands follow, four bytes each.
	for i := 16; i+4 <= size; i += 4 {
		if contentType := heifBrands[string(data[i:i+4])]; contentType != "" {
			return contentType
		}
	}
	return ""
}

// sanitizeFileName keeps the base name of what the browser sent, without control or
// direction-changing characters, at most 100 characters with the extension kept; an
// empty name becomes one from the type.
func sanitizeFileName(name string, typ uploadType) string {
	name = strings.ToValidUTF8(name, "")
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(name)
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '/' || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimLeft(strings.TrimSpace(name), ".")
	name = strings.TrimSpace(name)
	if name == "" {
		base := "photo"
		if typ.Kind == database.SecureFile {
			base = "document"
		}
		return base + typ.Ext
	}
	if runes := []rune(name); len(runes) > maxFileNameRunes {
		ext := []rune(path.Ext(name))
		if len(ext) > 10 {
			ext = nil
		}
		name = strings.TrimSpace(string(runes[:maxFileNameRunes-len(ext)])) + string(ext)
	}
	return name
}

// upload is what a multipart upload form carried.
type upload struct {
	CSRF     string
	FileName string
	Data     []byte
}

var errNotMultipart = errors.New("not a multipart form")

// readUpload reads the upload form's fields, keeping the first non-empty file. A file
// over limit bytes gives ErrUploadTooLarge; a body over the request's MaxBytesReader
// gives an *http.MaxBytesError.
func readUpload(r *http.Request, limit int64) (*upload, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, errNotMultipart
	}
	up := &upload{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return up, nil
		} else if err != nil {
			return nil, err
		}
		err = readPart(part, up, limit)
		_ = part.Close()
		if err != nil {
			return nil, err
		}
	}
}

func readPart(part *multipart.Part, up *upload, limit int64) error {
	switch part.FormName() {
	case "csrf":
		value, err := io.ReadAll(io.LimitReader(part, 256))
		if err != nil {
			return err
		}
		up.CSRF = string(value)
	case "file":
		if up.Data != nil {
			return nil // one file per upload; the rest is drained by NextPart
		}
		data, err := io.ReadAll(io.LimitReader(part, limit+1))
		if err != nil {
			return err
		} else if int64(len(data)) > limit {
			return ErrUploadTooLarge
		} else if len(data) > 0 {
			up.Data, up.FileName = data, part.FileName()
		}
	}
	return nil
}
