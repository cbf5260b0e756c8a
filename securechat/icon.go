package securechat

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"strconv"
)

// The pages' icon, for the browser tab and for a patient who adds the chat to the home
// screen (the web app manifest): the header's white lock on the brand blue. The PNG sizes
// are drawn here, once, rather than kept as binary files; the SVG is assets/icon.svg.

var (
	brandBlue  = color.RGBA{R: 0x0b, G: 0x53, B: 0x94, A: 0xff}
	iconSizes  = []int{180, 192, 512} // Apple touch icon, Android's two
	themeColor = "#0b5394"
)

// lockIcon draws the icon at size×size, antialiased (4×4 samples a pixel). The lock is 60%
// of the icon's height, inside the safe zone of a maskable icon.
func lockIcon(size int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	// In the 24-unit grid of the header's lock: the body 16×12 from (4,10) with corners of
	// radius 2, the shackle a half ring of radii 3 and 5 around (12,7) on bars down to it.
	inside := func(x, y float64) bool {
		if x >= 4 && x <= 20 && y >= 10 && y <= 22 {
			cx, cy := math.Max(6-x, math.Max(x-18, 0)), math.Max(12-y, math.Max(y-20, 0))
			return cx*cx+cy*cy <= 4
		}
		if y <= 7 {
			d := math.Hypot(x-12, y-7)
			return d >= 3 && d <= 5
		}
		return y <= 10 && ((x >= 7 && x <= 9) || (x >= 15 && x <= 17))
	}
	scale := float64(size) * 0.6 / 20 // the lock is 16 units wide and 20 tall (y 2-22)
	offX := (float64(size) - 16*scale) / 2
	offY := (float64(size) - 20*scale) / 2
	const samples = 4
	for py := range size {
		for px := range size {
			hits := 0
			for sy := range samples {
				for sx := range samples {
					x := (float64(px)+(float64(sx)+0.5)/samples-offX)/scale + 4
					y := (float64(py)+(float64(sy)+0.5)/samples-offY)/scale + 2
					if inside(x, y) {
						hits++
					}
				}
			}
			a := float64(hits) / samples / samples
			img.SetRGBA(px, py, color.RGBA{
				R: uint8(float64(brandBlue.R)*(1-a) + 255*a + 0.5),
				G: uint8(float64(brandBlue.G)*(1-a) + 255*a + 0.5),
				B: uint8(float64(brandBlue.B)*(1-a) + 255*a + 0.5),
				A: 0xff,
			})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}

// manifestPath is the web app manifest, in the page's language.
const manifestPath = ChatPath + "/app.webmanifest"

// handleManifest describes the chat as an app: it opens on the chat (which sends a
// signed-out patient to the page that says how to come back), with the clinic's name.
func (w *Web) handleManifest(rw http.ResponseWriter, r *http.Request) {
	lang := langOf(r)
	name := translate(lang, "page.secure")
	short := name
	if w.svc.ClinicName != "" {
		name = w.svc.ClinicName + ": " + name
		short = w.svc.ClinicName
	}
	icons := []map[string]string{{"src": assetPrefix + "icon.svg?v=" + w.assetVersion, "sizes": "any", "type": "image/svg+xml"}}
	for _, size := range iconSizes[1:] {
		s := strconv.Itoa(size)
		icons = append(icons, map[string]string{"src": assetPrefix + "icon-" + s + ".png?v=" + w.assetVersion,
			"sizes": s + "x" + s, "type": "image/png", "purpose": "any maskable"})
	}
	data, err := json.Marshal(map[string]any{
		"name": name, "short_name": short, "lang": lang, "dir": "ltr",
		"start_url": ChatPath, "scope": "/", "display": "standalone",
		"background_color": "#f4f6f8", "theme_color": themeColor, "icons": icons,
	})
	if err != nil {
		w.serverError(rw, r, err, "Failed to write the web app manifest")
		return
	}
	rw.Header().Set("Content-Type", "application/manifest+json; charset=utf-8")
	_, _ = rw.Write(data)
}
