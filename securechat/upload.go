package securechat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"slices"
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

// typeExts are the file extensions of the types uploads and staff files may have, the
// first one the one a name is given; a name never keeps an extension its bytes belie.
var typeExts = map[string][]string{
	"image/jpeg": {".jpg", ".jpeg"}, "image/png": {".png"}, "image/webp": {".webp"}, "image/gif": {".gif"},
	"image/heic": {".heic"}, "image/heif": {".heif", ".heic"}, "image/avif": {".avif"}, "application/pdf": {".pdf"},
}

// sanitizeFileName keeps the base name of what the browser sent, without control or
// direction-changing characters, at most 100 characters, and ending in the extension of
// its type (JPEG bytes sent as "report.html" become "report.jpg"); an empty name becomes
// one from the type. A type without a known extension keeps the name's own.
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
	// No hidden file: dots and spaces go from the start, whatever their order (". . x").
	name = strings.TrimLeftFunc(name, func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
	name = strings.TrimSpace(name)
	exts := typeExts[typ.ContentType]
	if typ.Ext != "" && !slices.Contains(exts, typ.Ext) {
		exts = append([]string{typ.Ext}, exts...)
	}
	if name == "" {
		base := "photo"
		if typ.Kind == database.SecureFile {
			base = "document"
		}
		if len(exts) == 0 {
			return base
		}
		return base + exts[0]
	}
	ext := path.Ext(name)
	if !isExtension(ext) {
		ext = ""
	}
	if len(exts) > 0 && !slices.Contains(exts, strings.ToLower(ext)) {
		name = strings.TrimSpace(strings.TrimSuffix(name, ext))
		if name == "" {
			name = "file"
		}
		if ext = path.Ext(name); !slices.Contains(exts, strings.ToLower(ext)) {
			ext = exts[0] // "photo.jpg.html" is "photo.jpg", not "photo.jpg.jpg"
			name += ext
		}
	}
	if runes := []rune(name); len(runes) > maxFileNameRunes {
		extRunes := []rune(ext)
		name = strings.TrimSpace(string(runes[:maxFileNameRunes-len(extRunes)])) + ext
	}
	return name
}

// isExtension tells whether what follows a name's last dot looks like a file extension
// (".html", ".exe"), not part of the name ("v1.2 results").
func isExtension(ext string) bool {
	if len(ext) < 2 || len(ext) > 10 {
		return false
	}
	for _, r := range ext[1:] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
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
