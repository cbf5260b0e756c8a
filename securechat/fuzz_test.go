package securechat

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// FuzzNormalizeDOB: whatever staff or a patient type as a date of birth, NormalizeDOB
// never panics, and what it accepts is a real past date written YYYY-MM-DD that reads
// back to itself.
func FuzzNormalizeDOB(f *testing.F) {
	for _, seed := range []string{"1980-02-03", " 1980-02-29 ", "1980-02-30", "02/03/1980", "1899-12-31", "9999-12-31",
		"1980-2-3", "+1980-02-03", "1980-02-03T00:00:00Z", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		dob, err := NormalizeDOB(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidDOB) || dob != "" {
				t.Fatalf("%q: %q, %v", raw, dob, err)
			}
			return
		}
		day, perr := time.Parse("2006-01-02", dob)
		if perr != nil || day.Year() < 1900 || day.After(time.Now()) || len(dob) != 10 {
			t.Fatalf("%q accepted as %q", raw, dob)
		}
		if again, err := NormalizeDOB(dob); err != nil || again != dob {
			t.Fatalf("%q accepted as %q, which reads as %q (%v)", raw, dob, again, err)
		}
	})
}

// FuzzUploadName: whatever bytes and name a browser sends, an accepted upload is named
// from its detected type: the name ends in an extension of that type (never the one the
// patient gave, if their bytes belie it), holds no path, control or direction characters,
// does not start with a dot and is at most 100 characters.
func FuzzUploadName(f *testing.F) {
	for _, seed := range []struct{ data, name string }{
		{"\xFF\xD8\xFF\xE0", "report.html"}, {"\x89PNG\r\n\x1a\n", "scan.PNG"}, {"%PDF-1.7", "../../etc/passwd"},
		{"RIFF\x00\x00\x00\x00WEBP", "photo.jpg.exe"}, {"\x00\x00\x00\x18ftypheicmif1heic", "IMG_0001.HEIC"},
		{"\xFF\xD8\xFF", ". . x"}, {"%PDF-", strings.Repeat("é", 120) + ".pdf"}, {"\xFF\xD8\xFF", "\u202egpj.exe"},
	} {
		f.Add([]byte(seed.data), seed.name)
	}
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		typ, ok := sniffUpload(data)
		if !ok {
			return
		}
		got := sanitizeFileName(name, typ)
		if !slices.Contains(typeExts[typ.ContentType], strings.ToLower(path.Ext(got))) {
			t.Fatalf("%s bytes named %q from %q", typ.ContentType, got, name)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > maxFileNameRunes {
			t.Fatalf("bad name %q from %q", got, name)
		}
		if strings.ContainsAny(got, "/\\") || strings.HasPrefix(got, ".") || strings.TrimSpace(got) != got {
			t.Fatalf("%q from %q", got, name)
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
				t.Fatalf("control character %U in %q", r, got)
			}
		}
	})
}

// FuzzReadUpload: whatever a browser (or anyone) posts as the upload form, readUpload
// never panics, keeps at most one file of at most limit bytes, and a CSRF field of at most
// 256 bytes.
func FuzzReadUpload(f *testing.F) {
	const limit = 64
	part := func(field, file, body string) string {
		disposition := `form-data; name="` + field + `"`
		if file != "" {
			disposition += `; filename="` + file + `"`
		}
		return "--cbx\r\nContent-Disposition: " + disposition + "\r\n\r\n" + body + "\r\n"
	}
	f.Add(part("csrf", "", "token") + part("file", "a.jpg", "\xFF\xD8\xFFdata") + "--cbx--\r\n")
	f.Add(part("file", "", "") + part("file", "b.pdf", "%PDF-1.4") + "--cbx--\r\n")
	f.Add(part("file", "big.png", strings.Repeat("x", limit+1)) + "--cbx--\r\n")
	f.Add(part("csrf", "", strings.Repeat("c", 300)) + "--cbx--\r\n")
	f.Add("--cbx\r\nContent-Disposition: form-data; name*=UTF-8''file; filename*=UTF-8''%E2%80%AE.jpg\r\n\r\nx\r\n--cbx--")
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/chat/upload", strings.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary=cbx")
		up, err := readUpload(r, limit)
		if err != nil {
			if up != nil {
				t.Fatal("an upload with an error")
			}
			return
		}
		if len(up.Data) > limit || (up.Data != nil && len(up.Data) == 0) || len(up.CSRF) > 256 {
			t.Fatalf("kept %d bytes, a CSRF field of %d", len(up.Data), len(up.CSRF))
		}
		if up.Data == nil && up.FileName != "" {
			t.Fatalf("a name %q without a file", up.FileName)
		}
	})
}
