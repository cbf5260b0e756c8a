package securechat

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/carebridge/carebridge/database"
)

func TestSniffUpload(t *testing.T) {
	ftyp := func(major string, compatible ...string) []byte {
		box := []byte{0, 0, 0, byte(16 + 4*len(compatible))}
		box = append(box, "ftyp"+major+"\x00\x00\x00\x00"...)
		for _, brand := range compatible {
			box = append(box, brand...)
		}
		return append(box, "\x00\x00\x00\x08meta"...)
	}
	for _, tc := range []struct {
		name        string
		data        []byte
		contentType string
		kind        database.SecureMessageKind
	}{
		{"jpeg", []byte("\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"), "image/jpeg", database.SecureImage},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "image/png", database.SecureImage},
		{"webp", []byte("RIFF\x24\x00\x00\x00WEBPVP8 "), "image/webp", database.SecureImage},
		{"heic (iPhone)", ftyp("heic", "mif1", "heic"), "image/heic", database.SecureImage},
		{"heix", ftyp("heix", "mif1"), "image/heic", database.SecureImage},
		{"hevc sequence", ftyp("hevc", "msf1"), "image/heic", database.SecureImage},
		{"heif (Android)", ftyp("mif1", "heic"), "image/heif", database.SecureImage},
		{"msf1", ftyp("msf1"), "image/heif", database.SecureImage},
		{"heif by compatible brand", ftyp("abcd", "xxxx", "mif1"), "image/heif", database.SecureImage},
		{"pdf", []byte("%PDF-1.7\n%\xE2\xE3\xCF\xD3\n"), "application/pdf", database.SecureFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, ok := sniffUpload(tc.data)
			assert.True(t, ok)
			assert.Equal(t, tc.contentType, typ.ContentType)
			assert.Equal(t, tc.kind, typ.Kind)
		})
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"html claiming png", []byte("<!doctype html><script>alert(1)</script>")},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
		{"gif", []byte("GIF89a\x01\x00\x01\x00")},
		{"mp4", ftyp("isom", "iso2", "avc1", "mp41")},
		{"quicktime", ftyp("qt  ", "qt  ")},
		{"short ftyp", []byte("\x00\x00\x00\x10ftyphe")},
		{"riff wave", []byte("RIFF\x24\x00\x00\x00WAVEfmt ")},
		{"pdf later in the file", []byte("junk\n%PDF-1.4")},
		{"zip", []byte("PK\x03\x04")},
		{"exe", []byte("MZ\x90\x00")},
		{"text", []byte("hello")},
		{"two jpeg bytes", []byte("\xFF\xD8")},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			_, ok := sniffUpload(tc.data)
			assert.False(t, ok)
		})
	}
}

func TestSanitizeFileName(t *testing.T) {
	png := uploadType{"image/png", database.SecureImage, ".png"}
	pdf := uploadType{"application/pdf", database.SecureFile, ".pdf"}
	jpeg := uploadType{"image/jpeg", database.SecureImage, ".jpg"}
	long := strings.Repeat("a", 150) + ".jpeg"
	for _, tc := range []struct {
		in   string
		typ  uploadType
		want string
	}{
		{"IMG_2041.png", png, "IMG_2041.png"},
		{"../../etc/passwd", png, "passwd.png"},
		{`C:\Users\maria\Desktop\rash.png`, png, "rash.png"},
		{"rash\u202egnp.exe", png, "rashgnp.png"},
		{"report.html", jpeg, "report.jpg"},
		{"report .HTML", jpeg, "report.jpg"},
		{"photo.jpg.html", jpeg, "photo.jpg"},
		{"IMG_0001.JPEG", jpeg, "IMG_0001.JPEG"},
		{"v1.2 results", pdf, "v1.2 results.pdf"},
		{"scan", pdf, "scan.pdf"},
		{".html", jpeg, "html.jpg"},
		{"notes.docx", uploadType{ContentType: "application/vnd.openxmlformats-officedocument.wordprocessingml.document", Kind: database.SecureFile}, "notes.docx"},
		{"tab\tnew\nline\x00.png", png, "tabnewline.png"},
		{"  .hidden.png ", png, "hidden.png"},
		{"", png, "photo.png"},
		{"/", pdf, "document.pdf"},
		{"...", pdf, "document.pdf"},
		{"\xff\xfe.pdf", pdf, "pdf.pdf"},
		{"résultats d’analyse.pdf", pdf, "résultats d’analyse.pdf"},
		{long, jpeg, strings.Repeat("a", 95) + ".jpeg"},
		{long, png, strings.Repeat("a", 96) + ".png"},
	} {
		got := sanitizeFileName(tc.in, tc.typ)
		assert.Equal(t, tc.want, got, "%q", tc.in)
		assert.LessOrEqual(t, utf8.RuneCountInString(got), maxFileNameRunes)
	}
}

func TestNormalizeCode(t *testing.T) {
	for in, want := range map[string]string{"123456": "123456", " 123 456 ": "123456", "123-456": "123456", "012345": "012345"} {
		got, ok := normalizeCode(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"", "12345", "1234567", "12345a", "١٢٣٤٥٦", "12 34 5"} {
		_, ok := normalizeCode(in)
		assert.False(t, ok, in)
	}
}

func FuzzSniffUpload(f *testing.F) {
	for _, seed := range []string{"\xFF\xD8\xFF", "\x89PNG\r\n\x1a\n", "RIFF\x00\x00\x00\x00WEBP", "%PDF-1.4",
		"\x00\x00\x00\x18ftypheicmif1heic", "\x00\x00\x00\x00ftypabcd\x00\x00\x00\x00mif1", "<html>"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, ok := sniffUpload(data)
		if !ok {
			return
		}
		switch typ.ContentType {
		case "image/jpeg", "image/png", "image/webp", "image/heic", "image/heif":
			if typ.Kind != database.SecureImage {
				t.Fatalf("%s is not an image kind", typ.ContentType)
			}
		case "application/pdf":
			if typ.Kind != database.SecureFile {
				t.Fatal("pdf is not a file kind")
			}
		default:
			t.Fatalf("unexpected type %q", typ.ContentType)
		}
	})
}

func FuzzSanitizeFileName(f *testing.F) {
	for _, seed := range []string{"a.png", "../x", `C:\a\b.pdf`, "\u202e", strings.Repeat("é", 200) + ".pdf", "\x00"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := sanitizeFileName(name, uploadType{"image/png", database.SecureImage, ".png"})
		if got == "" || !utf8.ValidString(got) || utf8.RuneCountInString(got) > maxFileNameRunes {
			t.Fatalf("bad name %q from %q", got, name)
		}
		if strings.ContainsAny(got, "/\\") || strings.HasPrefix(got, ".") {
			t.Fatalf("path in %q from %q", got, name)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
				t.Fatalf("control character %U in %q", r, got)
			}
		}
	})
}
