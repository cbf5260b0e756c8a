package twiliosim

import (
	"bytes"
	"net/http"
	"regexp"
	"slices"
	"time"
)

// Bounds of the photos the phone page uploads.
const (
	// simulatorMaxPhotoBytes is the largest photo the page accepts, about what carriers
	// carry in one MMS.
	simulatorMaxPhotoBytes = 5 << 20
	// simulatorMediaKeep and simulatorMediaKeepBytes bound the photos kept in memory for
	// the bridge to download; the oldest go first.
	simulatorMediaKeep      = 200
	simulatorMediaKeepBytes = 256 << 20
)

// simMediaIDPattern is a media ID: 128 random bits in hex.
var simMediaIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// simulatorPhotoTypes are the types a photo may be, as sniffed from its bytes: what every
// carrier carries by MMS and every browser shows.
var simulatorPhotoTypes = []string{"image/jpeg", "image/png", "image/gif"}

// simMedia is one uploaded photo.
type simMedia struct {
	id          string
	data        []byte
	contentType string
	added       time.Time
}

// simMediaStore keeps uploaded photos, oldest first. The Simulator's mutex guards it.
type simMediaStore struct {
	items []*simMedia
	bytes int
}

func (m *simMediaStore) add(item *simMedia) {
	m.items = append(m.items, item)
	m.bytes += len(item.data)
	for len(m.items) > simulatorMediaKeep || (m.bytes > simulatorMediaKeepBytes && len(m.items) > 1) {
		m.bytes -= len(m.items[0].data)
		m.items[0] = nil
		m.items = m.items[1:]
	}
}

func (m *simMediaStore) get(id string) *simMedia {
	for _, item := range m.items {
		if item.id == id {
			return item
		}
	}
	return nil
}

func (m *simMediaStore) remove(id string) {
	m.items = slices.DeleteFunc(m.items, func(item *simMedia) bool {
		if item.id == id {
			m.bytes -= len(item.data)
			return true
		}
		return false
	})
}

// sniffPhoto returns the photo's type from its bytes, or "" when it is not one of
// simulatorPhotoTypes, whatever the browser claimed.
func sniffPhoto(data []byte) (contentType, sniffed string) {
	sniffed = http.DetectContentType(data)
	if slices.Contains(simulatorPhotoTypes, sniffed) {
		return sniffed, sniffed
	}
	return "", sniffed
}

// serveMedia serves an uploaded photo: the bridge downloads it as it would download
// Twilio's media, and the page shows it in the patient's own bubbles.
func (s *Simulator) serveMedia(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var item *simMedia
	if simMediaIDPattern.MatchString(id) {
		s.mu.Lock()
		item = s.media.get(id)
		s.mu.Unlock()
	}
	if item == nil {
		http.Error(w, "No such photo: it was never uploaded, or the simulator has forgotten it", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", item.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "private, max-age=3600")
	http.ServeContent(w, r, "", item.added, bytes.NewReader(item.data))
}
