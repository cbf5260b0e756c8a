//go:build e2eepatient

package e2ee

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/securechat"
)

// PageCSP is the patient page's Content-Security-Policy: the secure chat's own policy (nothing
// but this origin, no inline script or style, no framing), with WebAssembly compilation
// (matrix-sdk-crypto-wasm) allowed and eval still not. It is sent on that page only.
var PageCSP = strings.Replace(securechat.ContentSecurityPolicy,
	"script-src 'self';", "script-src 'self' 'wasm-unsafe-eval';", 1)

// WasmFiles are the files of matrix-sdk-crypto-wasm's pkg folder the page loads: the
// wasm-bindgen bindings and the module they instantiate.
var WasmFiles = []string{"matrix_sdk_crypto_wasm_bg.js", "matrix_sdk_crypto_wasm_bg.wasm"}

// The page's own files: the HTML template, its module, and the crypto core it shares with the
// Node stand-in of the tests (testdata/patient_device.mjs).
//
//go:embed page/patient_page.html page/patient_page.mjs page/patient_core.mjs
var pageFiles embed.FS

// PageConfig says where the page's parts are.
type PageConfig struct {
	// WasmDir is matrix-sdk-crypto-wasm's pkg folder (WasmFiles), as npm installs it.
	WasmDir string
	// Base is the path the page is served at (Base+"page") and its assets under (Base+"assets/").
	Base string
	// ProxyBase is the path before the proxy's /_matrix/client/…; EventsPath is the long poll's.
	ProxyBase, EventsPath string
}

// PageAsset is one static file of the page: its content-hashed URL, its SRI value, and its
// bytes, as they are and gzipped.
type PageAsset struct {
	URL, Integrity string
	ctype          string
	body, gz       []byte
}

// Page serves the patient page and its assets from the bridge's own origin: the assets under
// content-hashed names, immutable, gzipped once at start for browsers that take it, each
// named in the page with its SRI value; the page's HTML never cached, with PageCSP.
type Page struct {
	Bindings, Wasm, Core, Module *PageAsset
	cfg                          PageConfig
	byURL                        map[string]*PageAsset
	html                         *template.Template
}

// NewPage reads and prepares the page's files (about a second: gzip level 9 of the 7.8 MB
// wasm). A file missing from cfg.WasmDir is an error that names it.
func NewPage(cfg PageConfig) (*Page, error) {
	if cfg.WasmDir == "" {
		return nil, fmt.Errorf("no folder given for matrix-sdk-crypto-wasm's files (%s)", strings.Join(WasmFiles, ", "))
	}
	p := &Page{cfg: cfg, byURL: map[string]*PageAsset{}}
	add := func(body []byte, file, ctype string) (*PageAsset, error) {
		name, ext, _ := strings.Cut(file, ".")
		sum := sha256.Sum256(body)
		sri := sha512.Sum384(body)
		var gz bytes.Buffer
		w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = w.Write(body)
		if err := w.Close(); err != nil {
			return nil, err
		}
		as := &PageAsset{
			URL:       fmt.Sprintf("%sassets/%s.%s.%s", cfg.Base, name, hex.EncodeToString(sum[:8]), ext),
			Integrity: "sha384-" + base64.StdEncoding.EncodeToString(sri[:]),
			ctype:     ctype, body: body, gz: gz.Bytes(),
		}
		p.byURL[as.URL] = as
		return as, nil
	}
	for i, dst := range []**PageAsset{&p.Bindings, &p.Wasm} {
		path := filepath.Join(cfg.WasmDir, WasmFiles[i])
		body, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("matrix-sdk-crypto-wasm's %s is missing: %w", WasmFiles[i], err)
		}
		ctype := "text/javascript"
		if strings.HasSuffix(path, ".wasm") {
			ctype = "application/wasm"
		}
		if *dst, err = add(body, WasmFiles[i], ctype); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		dst  **PageAsset
		file string
	}{{&p.Core, "patient_core.mjs"}, {&p.Module, "patient_page.mjs"}} {
		body, err := pageFiles.ReadFile("page/" + f.file)
		if err != nil {
			return nil, err
		}
		if *f.dst, err = add(body, f.file, "text/javascript"); err != nil {
			return nil, err
		}
	}
	var err error
	p.html, err = template.ParseFS(pageFiles, "page/patient_page.html")
	if err != nil {
		return nil, err
	}
	return p, nil
}

// PagePath is where the page is served; AssetPrefix where its assets are.
func (p *Page) PagePath() string    { return p.cfg.Base + "page" }
func (p *Page) AssetPrefix() string { return p.cfg.Base + "assets/" }

// ServeAsset serves a content-hashed asset: immutable, gzipped when the browser takes it.
// Assets are the same bytes for every patient (the page's code and the npm package's), so they
// need no session; what is patient's is in the page and behind the proxy.
func (p *Page) ServeAsset(rw http.ResponseWriter, r *http.Request) {
	as, ok := p.byURL[r.URL.Path]
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(rw, r)
		return
	}
	h := rw.Header()
	h.Set("Content-Type", as.ctype)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Vary", "Accept-Encoding")
	body := as.body
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		body = as.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = rw.Write(body)
}

// PageDevice is whose page it is: the patient-web user, the browser device the page becomes,
// the secure room, and its members as the page opens (the events poll brings only what is
// filed from then on; without them a page opened after staff joined would share its room
// keys with no one).
type PageDevice struct {
	User    id.UserID
	Device  id.DeviceID
	Room    id.RoomID
	Members []id.UserID
}

// ServePage serves the page's HTML for d (the caller has checked the session): the assets'
// URLs and SRI values, the page's IDs, PageCSP, never cached.
func (p *Page) ServePage(rw http.ResponseWriter, r *http.Request, d PageDevice) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rw.Header().Set("Allow", "GET, HEAD")
		http.Error(rw, "the page is a GET", http.StatusMethodNotAllowed)
		return
	}
	members, err := json.Marshal(d.Members)
	if err != nil || d.Members == nil {
		members = []byte("[]")
	}
	var out bytes.Buffer
	err = p.html.Execute(&out, map[string]any{
		"Bindings": p.Bindings, "Wasm": p.Wasm, "Core": p.Core, "Page": p.Module,
		"ProxyBase": p.cfg.ProxyBase, "EventsURL": p.cfg.EventsPath,
		"UserID": d.User.String(), "DeviceID": d.Device.String(), "RoomID": d.Room.String(),
		"Members": string(members),
	})
	if err != nil {
		http.Error(rw, "the page could not be made", http.StatusInternalServerError)
		return
	}
	h := rw.Header()
	securechat.SetPageHeaders(h, PageCSP)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(out.Len()))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = rw.Write(out.Bytes())
}
