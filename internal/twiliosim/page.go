package twiliosim

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/carebridge/carebridge/sms"
)

//go:embed phone/phone.html phone/phone.css phone/phone.js
var simulatorAssets embed.FS

var simulatorPage = template.Must(template.ParseFS(simulatorAssets, "phone/phone.html"))

// simulatorAssetTypes are the static files the page loads, with their types.
var simulatorAssetTypes = map[string]string{
	"phone.css": "text/css; charset=utf-8",
	"phone.js":  "text/javascript; charset=utf-8",
}

// simulatorPatientsShown is how many patient numbers the page lists to switch to.
const simulatorPatientsShown = 20

// simLinkPattern finds http(s) URLs in a text; simLinkTail is punctuation that ends a
// sentence rather than the URL.
var simLinkPattern = regexp.MustCompile("(?i)\\bhttps?://[^\\s<>\"'`]+")

const simLinkTail = ".,;:!?'\""

// simPageData is what phone.html shows.
type simPageData struct {
	Base     string
	CSRF     string
	Patient  string // empty on the page that only picks a patient
	PageURL  string
	FeedURL  string
	Version  uint64
	Items    []simItem
	Patients []simPatientLink
	Clinics  []string
	// ClinicNumbers are the linked clinic numbers as a person reads them, for the first page.
	ClinicNumbers []string
	To            string // the clinic number the form texts
	Body          string // kept when sending failed
	Switch        string // what was typed to switch patients, kept when it was refused
	Error         string
	Notice        string
}

type simPatientLink struct {
	Phone   string
	URL     string
	Current bool
}

// simItem is one bubble.
type simItem struct {
	Outgoing  bool // typed on this phone, as the patient
	From, To  string
	Parts     []simTextPart
	Images    []string
	Files     []simFileLink
	ISOTime   string
	TimeLabel string
	Last      bool
	// Undelivered says why a text from the clinic never reached this phone.
	Undelivered string
}

// simTextPart is a run of a text's body: plain, or a link when URL is set. The template
// builds the anchor, so the body is escaped whatever it holds.
type simTextPart struct {
	Text string
	URL  string
}

type simFileLink struct {
	URL  string
	Name string
}

// Handler serves the phone page and its endpoints. Its paths are relative to BasePath; it
// also accepts the full paths when mounted without stripping the prefix.
func (s *Simulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.serveHome)
	mux.HandleFunc("GET /switch", s.handleSwitch)
	mux.HandleFunc("GET /phone/{phone}", s.servePhone)
	mux.HandleFunc("GET /phone/{phone}/messages.json", s.serveMessages)
	mux.HandleFunc("POST /phone/{phone}/send", s.handleSend)
	mux.HandleFunc("GET /media/{id}", s.serveMedia)
	mux.HandleFunc("GET /assets/{name}", s.serveAsset)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", s.contentSecurityPolicy())
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if s.basePath != "" {
			switch {
			case r.URL.Path == s.basePath:
				target := s.basePath + "/"
				if r.URL.RawQuery != "" {
					target += "?" + r.URL.RawQuery
				}
				http.Redirect(w, r, target, http.StatusMovedPermanently)
				return
			case strings.HasPrefix(r.URL.Path, s.basePath+"/"):
				r2 := new(http.Request)
				*r2 = *r
				r2.URL = new(url.URL)
				*r2.URL = *r.URL
				r2.URL.Path = strings.TrimPrefix(r.URL.Path, s.basePath)
				r2.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, s.basePath)
				r = r2
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy allows only the page's own files. Pictures may also come from the
// bridge's public URL, where the bridge serves outbound MMS media, in case the page was
// opened under another name for the same server.
func (s *Simulator) contentSecurityPolicy() string {
	img := "img-src 'self' data:"
	if u, err := url.Parse(s.publicBase); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		img += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'self'; " + img + "; style-src 'self'; form-action 'self'; frame-ancestors 'none'"
}

func (s *Simulator) phoneURL(phone string) string {
	return s.basePath + "/phone/" + phone
}

// serveHome opens the most recently active patient's phone, or asks which to play.
func (s *Simulator) serveHome(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	recent := s.patientsLocked("")
	s.mu.Unlock()
	if len(recent) > 0 {
		http.Redirect(w, r, recent[0].URL, http.StatusSeeOther)
		return
	}
	s.renderPage(w, http.StatusOK, "", simPageData{
		Notice: "No texts yet. Type the patient number you want to play, such as (555) 123-4567, then text the clinic from it, " +
			"or wait for the clinic to text one. " +
			"A number ending in " + UnreachableSuffix + " plays a phone that is never reached: the clinic's texts to it are not delivered.",
	})
}

// handleSwitch opens the phone of the number typed in the switch form.
func (s *Simulator) handleSwitch(w http.ResponseWriter, r *http.Request) {
	phone := strings.TrimSpace(r.URL.Query().Get("phone"))
	e164, ok := s.normalizeTyped(phone)
	if !ok {
		s.renderPage(w, http.StatusBadRequest, "", simPageData{Switch: phone, Error: simPhoneError("The patient number", phone)})
		return
	}
	http.Redirect(w, r, s.phoneURL(e164), http.StatusSeeOther)
}

// servePhone shows the texts of one patient number and the form to answer as that patient.
func (s *Simulator) servePhone(w http.ResponseWriter, r *http.Request) {
	phone := r.PathValue("phone")
	if !e164Pattern.MatchString(phone) {
		if e164, ok := s.normalizeTyped(phone); ok {
			http.Redirect(w, r, s.phoneURL(e164), http.StatusSeeOther)
			return
		}
		s.renderPage(w, http.StatusBadRequest, "", simPageData{Switch: phone, Error: simPhoneError("The patient number", phone)})
		return
	}
	data := simPageData{}
	if r.URL.Query().Get("sent") != "" {
		data.Notice = "Sent. The bridge stored the text and the clinic will see it."
	}
	s.renderPage(w, http.StatusOK, phone, data)
}

// simPhoneError says in plain words why a number was refused.
func simPhoneError(what, phone string) string {
	if phone == "" {
		return what + " is empty. Type it as on a phone, such as (555) 123-4567, or with its country code, such as +44 7700 900123."
	}
	return fmt.Sprintf("%s %q is not a phone number. Type it as on a phone, such as (555) 123-4567, or with its country code, such as +44 7700 900123.",
		what, truncate(phone, 40))
}

// renderPage fills in what every page shows (the patient's texts, the numbers to switch
// to, the default clinic) and writes it.
func (s *Simulator) renderPage(w http.ResponseWriter, status int, patient string, data simPageData) {
	data.Base = s.basePath
	data.CSRF = s.csrfToken
	data.Patient = patient
	s.mu.Lock()
	data.Patients = s.patientsLocked(patient)
	data.Clinics = s.clinicsLocked(patient)
	for _, clinic := range data.Clinics {
		data.ClinicNumbers = append(data.ClinicNumbers, sms.FormatPhone(clinic, typedRegion))
	}
	if patient != "" {
		data.PageURL = s.phoneURL(patient)
		data.FeedURL = data.PageURL + "/messages.json"
		if data.To == "" {
			data.To = s.defaultClinicLocked(patient)
		}
		if th := s.threads[patient]; th != nil {
			data.Version = th.version
			data.Items = s.itemsLocked(th)
		}
	}
	s.mu.Unlock()

	var buf bytes.Buffer
	if err := simulatorPage.Execute(&buf, data); err != nil {
		http.Error(w, "The simulator page could not be drawn", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// patientsLocked lists the patient numbers with texts, most recently active first, with
// the current one included even when it has none yet.
func (s *Simulator) patientsLocked(current string) []simPatientLink {
	phones := make([]string, 0, len(s.threads))
	for phone := range s.threads {
		phones = append(phones, phone)
	}
	slices.SortFunc(phones, func(a, b string) int {
		if c := s.threads[b].lastActive.Compare(s.threads[a].lastActive); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	if current != "" && !slices.Contains(phones, current) {
		phones = append([]string{current}, phones...)
	}
	if len(phones) > simulatorPatientsShown {
		phones = phones[:simulatorPatientsShown]
	}
	links := make([]simPatientLink, len(phones))
	for i, phone := range phones {
		links[i] = simPatientLink{Phone: phone, URL: s.phoneURL(phone), Current: phone == current}
	}
	return links
}

// clinicsLocked lists the clinic numbers linked to the simulator and those the patient
// exchanged texts with.
func (s *Simulator) clinicsLocked(patient string) []string {
	clinics := make([]string, 0, len(s.clinics))
	for e164 := range s.clinics {
		clinics = append(clinics, e164)
	}
	if th := s.threads[patient]; th != nil {
		for _, t := range th.received {
			clinics = append(clinics, t.From)
		}
		for _, t := range th.sent {
			clinics = append(clinics, t.To)
		}
	}
	slices.Sort(clinics)
	return slices.Compact(clinics)
}

// defaultClinicLocked is the clinic the patient last exchanged a text with, else the
// clinic number linked last.
func (s *Simulator) defaultClinicLocked(patient string) string {
	if th := s.threads[patient]; th != nil && th.lastClinic != "" {
		return th.lastClinic
	}
	return s.lastClinic
}

// itemsLocked merges both directions of a thread by time, oldest first.
func (s *Simulator) itemsLocked(th *simThread) []simItem {
	texts := make([]simItem, 0, len(th.received)+len(th.sent))
	times := make([]time.Time, 0, cap(texts))
	for _, t := range th.received {
		texts = append(texts, newSimItem(t, false))
		times = append(times, t.Time)
	}
	for _, t := range th.sent {
		texts = append(texts, newSimItem(t, true))
		times = append(times, t.Time)
	}
	order := make([]int, len(texts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return times[a].Compare(times[b]) })
	items := make([]simItem, len(order))
	for i, idx := range order {
		items[i] = texts[idx]
	}
	if len(items) > 0 {
		items[len(items)-1].Last = true
	}
	return items
}

func newSimItem(t Text, outgoing bool) simItem {
	item := simItem{
		Outgoing:  outgoing,
		From:      t.From,
		To:        t.To,
		Parts:     autolink(t.Body),
		ISOTime:   t.Time.Format(time.RFC3339),
		TimeLabel: simTimeLabel(t.Time, time.Now()),
	}
	if t.ErrorCode != 0 {
		item.Undelivered = fmt.Sprintf("Not delivered to this phone (Twilio error %d): %s.", t.ErrorCode, sms.DescribeTwilioError(t.ErrorCode))
	}
	for _, raw := range t.MediaURLs {
		if simLooksLikeImage(raw) || outgoing {
			item.Images = append(item.Images, raw)
			continue
		}
		name := raw
		if u, err := url.Parse(raw); err == nil && path.Base(u.Path) != "/" && path.Base(u.Path) != "." {
			name = path.Base(u.Path)
		}
		item.Files = append(item.Files, simFileLink{URL: raw, Name: name})
	}
	return item
}

// simTimeLabel is a bubble's time: the clock time today, with the date otherwise.
func simTimeLabel(t, now time.Time) string {
	t = t.Local()
	if y, m, d := t.Date(); now.Local().Year() == y && now.Local().Month() == m && now.Local().Day() == d {
		return t.Format("15:04")
	}
	return t.Format("Jan 2, 15:04")
}

// simLooksLikeImage guesses from the URL whether a media URL is a picture the page can
// show inline; anything else is offered as a link.
func simLooksLikeImage(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch strings.ToLower(path.Ext(u.Path)) {
	case ".jpg", ".jpeg", ".png", ".gif", ".webp":
		return true
	}
	return false
}

// autolink splits a body into plain runs and http(s) links. Trailing sentence
// punctuation and unbalanced closing brackets are left out of a link.
func autolink(body string) []simTextPart {
	if body == "" {
		return nil
	}
	var parts []simTextPart
	last := 0
	for _, loc := range simLinkPattern.FindAllStringIndex(body, -1) {
		start, end := loc[0], loc[1]
		if start < last {
			continue
		}
		link := trimLinkTail(body[start:end])
		u, err := url.Parse(link)
		if err != nil || u.Host == "" {
			continue
		}
		if start > last {
			parts = append(parts, simTextPart{Text: body[last:start]})
		}
		parts = append(parts, simTextPart{Text: link, URL: link})
		last = start + len(link)
	}
	if last < len(body) {
		parts = append(parts, simTextPart{Text: body[last:]})
	}
	return parts
}

func trimLinkTail(link string) string {
	for len(link) > 0 {
		c := link[len(link)-1]
		switch {
		case strings.IndexByte(simLinkTail, c) >= 0:
		case c == ')' && strings.Count(link, "(") < strings.Count(link, ")"):
		case c == ']' && strings.Count(link, "[") < strings.Count(link, "]"):
		case c == '}' && strings.Count(link, "{") < strings.Count(link, "}"):
		default:
			return link
		}
		link = link[:len(link)-1]
	}
	return link
}

// simMessagesFeed is messages.json: the patient's inbox (with each text's delivery
// status), and a version that changes with every text either way and when one is not
// delivered, which the page polls.
type simMessagesFeed struct {
	Phone    string `json:"phone"`
	Version  uint64 `json:"version"`
	Messages []Text `json:"messages"`
}

func (s *Simulator) serveMessages(w http.ResponseWriter, r *http.Request) {
	phone := r.PathValue("phone")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	if !e164Pattern.MatchString(phone) {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": simPhoneError("The patient number", phone)})
		return
	}
	feed := simMessagesFeed{Phone: phone}
	s.mu.Lock()
	feed.Messages = s.inboxLocked(phone)
	if th := s.threads[phone]; th != nil {
		feed.Version = th.version
	}
	s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(feed)
}

func (s *Simulator) serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	contentType, ok := simulatorAssetTypes[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	data, err := simulatorAssets.ReadFile("phone/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(data)
}
