package main

// `carebridge-demo script` plays a triage conversation through a running demo, as a
// patient's phone, a member of staff in an end-to-end encrypted Matrix client and the
// patient's browser would, and prints what each side saw. It talks to the bridge only
// through what a patient or Element would use: the simulated phone's page, Matrix, and
// the secure chat's pages without JavaScript.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/big"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/textproto"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/internal/staffclient"
	"github.com/carebridge/carebridge/internal/twiliosim"
	"github.com/carebridge/carebridge/sms"
)

// What the script's people say.
const (
	patientText = "Hi, this is Maria. My son Leo has had a fever of 102°F since last night. Should I bring him in?"
	staffSecure = "Thanks Maria. To look at this safely: how is Leo drinking, and can you send a photo of the rash you mentioned?"
	patientRepl = "He is drinking, but less than usual. Here is the rash."
	photoName   = "rash.png"
)

// scriptWait bounds every wait for the other side.
const scriptWait = 30 * time.Second

const notRunningHint = "start `make demo` in another terminal first"

// scriptSteps names the steps as the failure message and the timings show them.
var scriptSteps = [...]string{
	"check the demo is running and sign in as staff",
	"patient texts the clinic",
	"staff accepts the invitation and reads the text",
	"staff switches to secure mode and replies",
	"patient's phone receives the alert",
	"patient opens the link and reads the message",
	"patient replies in the secure chat",
	"staff sees the reply and the photo",
}

// runScript is `carebridge-demo script`; it returns the exit code.
func runScript(args []string) int {
	flags := flag.NewFlagSet("carebridge-demo script", flag.ContinueOnError)
	bridgeURL := flags.String("bridge", "http://127.0.0.1:29340", "the demo bridge's address")
	hsURL := flags.String("homeserver", "http://127.0.0.1:8008", "the demo homeserver's address")
	patient := flags.String("patient", "", "the patient's number in E.164, one that has not texted the demo yet (default: a new fictional +1555 01XX XXXX number each run)")
	pagesFile := flags.String("pages", "", "at the end, write the patient's pages to this file (JSON: link, code page, chat, and the browser's cookies "+
		"to open the chat), for scripts/lighthouse.sh and scripts/screenshots.sh; the demo's patient is simulated")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *patient == "" {
		*patient = randomPatientNumber()
	} else if e164, err := sms.NormalizePhone(*patient, "US"); err != nil || e164 != *patient {
		fmt.Fprintf(os.Stderr, "demo-script: -patient %q is not a phone number in E.164 form, such as +15550112345\n", *patient)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &scriptRun{
		bridge:     strings.TrimRight(*bridgeURL, "/"),
		homeserver: strings.TrimRight(*hsURL, "/"),
		patient:    *patient,
		out:        os.Stdout,
	}
	err := s.run(ctx)
	if s.staff != nil {
		s.staff.close()
	}
	s.printTimings()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo-script: step %d failed (%s): %v\n", s.step, scriptSteps[s.step], err)
		return 1
	}
	fmt.Fprintf(s.out, "\nTranscript complete: %d steps, the staff's secure message never travelled by SMS.\n", len(scriptSteps)-1)
	if *pagesFile != "" {
		if err = s.writePages(*pagesFile); err != nil {
			fmt.Fprintf(os.Stderr, "demo-script: %v\n", err)
			return 1
		}
	}
	return 0
}

// patientPages is what -pages writes: where the patient's pages are, and the cookies of
// the patient's signed-in browser (the chat page needs them).
type patientPages struct {
	Link     string `json:"link"`
	CodePage string `json:"code_page"`
	Chat     string `json:"chat"`
	Cookie   string `json:"cookie"`
}

func (s *scriptRun) writePages(path string) error {
	u, err := url.Parse(s.bridge + "/chat")
	if err != nil {
		return err
	}
	var cookies []string
	for _, c := range s.browser.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	out, err := json.MarshalIndent(patientPages{Link: s.link, CodePage: s.link + "/verify?sent=1", Chat: u.String(),
		Cookie: strings.Join(cookies, "; ")}, "", "  ")
	if err != nil {
		return err
	}
	if err = os.WriteFile(path, append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("failed to write the pages file: %w", err)
	}
	return nil
}

// scriptRun is one play of the conversation.
type scriptRun struct {
	bridge, homeserver, patient string
	out                         io.Writer

	step    int
	timings []time.Duration

	phone   *simPhone
	staff   *staffClient
	browser *http.Client
	roomID  id.RoomID
	link    string
	ghost   id.UserID
	// staffEvent is the secure message, whose read receipt staff wait for.
	staffEvent id.EventID
	photo      []byte
	// replyEvent is the patient's last message in the room (the photo).
	replyEvent id.EventID
}

// say prints one line of the transcript.
func (s *scriptRun) say(format string, args ...any) {
	fmt.Fprintf(s.out, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (s *scriptRun) printTimings() {
	if len(s.timings) < 2 {
		return // the demo was not there: nothing to time
	}
	parts := make([]string, len(s.timings))
	var total time.Duration
	for i, d := range s.timings {
		parts[i] = fmt.Sprintf("%d: %.2fs", i, d.Seconds())
		total += d
	}
	parts[0] = strings.Replace(parts[0], "0:", "set-up", 1)
	fmt.Fprintf(s.out, "\nTimings: %s | total %.2fs\n", strings.Join(parts, " | "), total.Seconds())
}

func (s *scriptRun) run(ctx context.Context) error {
	steps := []func(context.Context) error{
		s.setUp, s.patientTexts, s.staffReads, s.staffGoesSecure, s.alertArrives, s.patientReads, s.patientReplies, s.staffSeesReply,
	}
	for i, step := range steps {
		s.step = i
		start := time.Now()
		err := step(ctx)
		s.timings = append(s.timings, time.Since(start))
		if err != nil {
			return err
		}
	}
	return nil
}

// setUp checks the demo answers and signs staff in.
func (s *scriptRun) setUp(ctx context.Context) error {
	fmt.Fprintf(s.out, "carebridge demo script: patient %s, bridge %s, homeserver %s\n\n", s.patient, s.bridge, s.homeserver)
	if err := checkRunning(ctx, s.bridge+"/_carebridge/simulator/", "the bridge"); err != nil {
		return err
	}
	if err := checkRunning(ctx, s.homeserver+"/_matrix/client/versions", "the homeserver"); err != nil {
		return err
	}
	s.phone = &simPhone{base: s.bridge + "/_carebridge/simulator", number: s.patient, http: &http.Client{Timeout: scriptWait}}
	// Staff sign in before the patient texts, as a nurse on shift would be: the bridge
	// then shares the room's keys with this new device from the first message.
	staff, err := newStaffClient(ctx, s.homeserver, s.patient)
	if err != nil {
		return err
	}
	s.staff = staff
	s.say("STAFF signs in as %s in a Matrix client with end-to-end encryption (new device %s)", staff.Matrix.UserID, staff.Matrix.DeviceID)
	return nil
}

// checkRunning fails with what to do when the demo does not answer.
func checkRunning(ctx context.Context, u, what string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s does not answer at %s (%v): %s", what, u, err, notRunningHint)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered HTTP %d at %s: %s", what, resp.StatusCode, u, notRunningHint)
	}
	return nil
}

// ---- 1. the patient texts -----------------------------------------------------------

func (s *scriptRun) patientTexts(ctx context.Context) error {
	clinic, err := s.phone.send(ctx, patientText)
	if err != nil {
		return err
	}
	s.say("PATIENT (SMS, %s → clinic %s): %s", s.patient, clinic, patientText)
	return nil
}

// ---- 2. staff accept the invitation and read the text --------------------------------

func (s *scriptRun) staffReads(ctx context.Context) error {
	roomID, err := s.staff.waitInvite(ctx)
	if err != nil {
		return err
	}
	s.roomID = roomID
	if _, err = s.staff.Matrix.JoinRoomByID(ctx, roomID); err != nil {
		return fmt.Errorf("failed to join %s: %w", roomID, err)
	}
	s.say("STAFF accepts the invitation to %s", s.staff.roomName(ctx, roomID))
	evt, err := s.staff.waitMessage(ctx, roomID, 0, "the patient's text in the room", func(evt *event.Event) bool {
		return strings.HasPrefix(evt.Sender.Localpart(), "sms_") && evt.Content.AsMessage().Body == patientText
	})
	if err != nil {
		return err
	}
	// The ghost's ID is opaque (it does not hold the number): it is who sent the text.
	s.ghost = evt.Sender
	if !decrypted(evt) {
		return fmt.Errorf("the patient's text reached the room unencrypted")
	}
	s.say("STAFF sees in Element (encrypted room, decrypted, from %s): %s", s.staff.displayName(ctx, roomID, evt.Sender), evt.Content.AsMessage().Body)
	return s.staff.waitEncryptedRoom(ctx, roomID)
}

// ---- 3. staff switch to secure mode and reply ----------------------------------------

func (s *scriptRun) staffGoesSecure(ctx context.Context) error {
	mark := s.staff.mark()
	if _, err := s.staff.sendText(ctx, s.roomID, "!sms secure"); err != nil {
		return err
	}
	s.say("STAFF: !sms secure")
	notice, err := s.staff.waitMessage(ctx, s.roomID, mark, "the bridge's secure mode notice", func(evt *event.Event) bool {
		msg := evt.Content.AsMessage()
		return msg.MsgType == event.MsgNotice && strings.Contains(msg.Body, "Secure mode")
	})
	if err != nil {
		return err
	}
	s.say("BRIDGE notice: %s", notice.Content.AsMessage().Body)
	s.phone.mark, err = s.phone.count(ctx)
	if err != nil {
		return err
	}
	if s.staffEvent, err = s.staff.sendText(ctx, s.roomID, staffSecure); err != nil {
		return err
	}
	s.say("STAFF (secure, encrypted, not texted): %s", staffSecure)
	return nil
}

// ---- 4. the patient's phone gets the alert --------------------------------------------

func (s *scriptRun) alertArrives(ctx context.Context) error {
	alert, err := s.phone.wait(ctx, "the secure message alert", func(t twiliosim.Text) bool {
		return strings.Contains(t.Body, "secure message") && findLink(t.Body) != ""
	})
	if err != nil {
		return err
	}
	s.say("PATIENT's phone receives SMS from %s: %s", alert.From, alert.Body)
	if leaked := leakedWords(alert.Body, staffSecure); len(leaked) > 0 {
		return fmt.Errorf("the alert SMS carries words of the staff message: %s", strings.Join(leaked, ", "))
	}
	s.say("CHECK: the alert holds no word of the staff message, only the clinic's name and a link")
	s.link = findLink(alert.Body)
	if u, err := url.Parse(s.link); err != nil || !strings.HasPrefix(u.Path, "/s/") {
		return fmt.Errorf("the alert's link %q is not a secure chat link (/s/…)", s.link)
	}
	return nil
}

// ---- 5. the patient opens the link ----------------------------------------------------

func (s *scriptRun) patientReads(ctx context.Context) error {
	link := s.link
	s.browser = newBrowser()
	page, _, err := getPage(ctx, s.browser, link)
	if err != nil {
		return fmt.Errorf("failed to open the link: %w", err)
	}
	button := firstMatch(page, `(?s)id="send-code">(.*?)</button>`)
	s.say("PATIENT opens the link in a browser without JavaScript: page %q, button %q", firstMatch(page, `(?s)<h1>(.*?)</h1>`), button)
	csrf := hiddenField(page, "csrf")
	if csrf == "" {
		return fmt.Errorf("the link page has no CSRF field")
	}
	s.phone.mark, err = s.phone.count(ctx)
	if err != nil {
		return err
	}
	page, final, err := postForm(ctx, s.browser, link+"/code", url.Values{"csrf": {csrf}})
	if err != nil {
		return fmt.Errorf("failed to ask for a code: %w", err)
	} else if !strings.HasSuffix(final.Path, "/verify") {
		return fmt.Errorf("asking for a code ended on %s, not the code page: %s", final.Path, pageError(page))
	}
	s.say("PATIENT taps %q", button)
	codeText, err := s.phone.wait(ctx, "the one-time code", func(t twiliosim.Text) bool { return findCode(t.Body) != "" })
	if err != nil {
		return err
	}
	code := findCode(codeText.Body)
	s.say("PATIENT's phone receives SMS (code shown: demo only): %s", codeText.Body)
	if csrf = hiddenField(page, "csrf"); csrf == "" {
		return fmt.Errorf("the code page has no CSRF field")
	}
	page, final, err = postForm(ctx, s.browser, link+"/verify", url.Values{"csrf": {csrf}, "code": {code}})
	if err != nil {
		return fmt.Errorf("failed to send the code: %w", err)
	} else if final.Path != "/chat" {
		return fmt.Errorf("the code was not accepted (ended on %s): %s", final.Path, pageError(page))
	}
	s.say("PATIENT types the code and is in the secure chat")
	var staffMsg *chatEntry
	for _, m := range chatEntries(page) {
		if !m.Mine && m.Text == staffSecure {
			staffMsg = &m
		}
	}
	if staffMsg == nil {
		return fmt.Errorf("the staff message is not in the secure chat (it shows %d messages)", len(chatEntries(page)))
	}
	s.say("PATIENT reads in the secure chat (from %s): %s", staffMsg.Sender, staffMsg.Text)
	return nil
}

// ---- 6. the patient replies -----------------------------------------------------------

func (s *scriptRun) patientReplies(ctx context.Context) error {
	page, _, err := getPage(ctx, s.browser, s.bridge+"/chat")
	if err != nil {
		return err
	}
	csrf := hiddenField(page, "csrf")
	if csrf == "" {
		return fmt.Errorf("the chat page has no CSRF field")
	}
	s.staff.replyMark = s.staff.mark()
	page, final, err := postForm(ctx, s.browser, s.bridge+"/chat/send", url.Values{"csrf": {csrf}, "text": {patientRepl}})
	if err != nil {
		return fmt.Errorf("failed to send the reply: %w", err)
	} else if final.Path != "/chat" {
		return fmt.Errorf("sending the reply ended on %s: %s", final.Path, pageError(page))
	}
	s.say("PATIENT (secure chat): %s%s", patientRepl, pendingNote(final))
	if s.photo, err = rashPhoto(); err != nil {
		return err
	}
	page, final, err = uploadFile(ctx, s.browser, s.bridge+"/chat/upload", csrf, photoName, "image/png", s.photo)
	if err != nil {
		return fmt.Errorf("failed to upload the photo: %w", err)
	} else if final.Path != "/chat" || strings.Contains(page, `id="upload-error"`) {
		return fmt.Errorf("uploading the photo ended on %s: %s", final.Path, pageError(page))
	}
	s.say("PATIENT (secure chat) uploads a photo: %s, image/png, %d bytes%s", photoName, len(s.photo), pendingNote(final))
	return nil
}

// ---- 7. staff see the reply -------------------------------------------------------------

func (s *scriptRun) staffSeesReply(ctx context.Context) error {
	from := s.staff.displayName(ctx, s.roomID, s.ghost)
	text, err := s.staff.waitMessage(ctx, s.roomID, s.staff.replyMark, "the patient's secure reply in the room", func(evt *event.Event) bool {
		return evt.Sender == s.ghost && strings.HasSuffix(evt.Content.AsMessage().Body, patientRepl)
	})
	if err != nil {
		return err
	}
	s.say("STAFF sees in Element (decrypted, from %s): %s", from, text.Content.AsMessage().Body)
	img, err := s.staff.waitMessage(ctx, s.roomID, s.staff.replyMark, "the patient's photo in the room", func(evt *event.Event) bool {
		return evt.Sender == s.ghost && evt.Content.AsMessage().MsgType == event.MsgImage
	})
	if err != nil {
		return err
	}
	s.replyEvent = img.ID
	msg := img.Content.AsMessage()
	data, err := s.staff.downloadAttachment(ctx, msg)
	if err != nil {
		return err
	}
	shape := "not a picture"
	if cfg, format, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
		shape = fmt.Sprintf("%s %d×%d", format, cfg.Width, cfg.Height)
	}
	same := "identical to the photo the patient uploaded"
	if sha256.Sum256(data) != sha256.Sum256(s.photo) {
		return fmt.Errorf("the photo staff decrypted (%d bytes) differs from the one uploaded (%d bytes)", len(data), len(s.photo))
	}
	kind := "encrypted attachment downloaded and decrypted"
	if msg.File == nil {
		kind = "attachment downloaded (not encrypted)"
	}
	s.say("STAFF sees in Element (decrypted, from %s): photo %q, %s, %d bytes, %s; %s, %s",
		from, msg.Body, msg.GetInfo().MimeType, len(data), shape, kind, same)
	if at, ok := s.staff.readReceipt(s.roomID, s.staffEvent, s.ghost); ok {
		s.say("STAFF sees the patient's read receipt on the secure message (read at %s)", at.Format("15:04:05"))
	}
	return s.checkNeverTexted(ctx)
}

// checkNeverTexted reads every text the patient's phone received: none carries the staff
// message.
func (s *scriptRun) checkNeverTexted(ctx context.Context) error {
	texts, err := s.phone.inbox(ctx)
	if err != nil {
		return err
	}
	for _, t := range texts {
		if leaked := leakedWords(t.Body, staffSecure); len(leaked) > 0 {
			return fmt.Errorf("a text to the patient carries words of the staff message (%s): %q", strings.Join(leaked, ", "), t.Body)
		}
	}
	s.say("CHECK: the patient's phone received %d texts; none holds a word of the staff's secure message", len(texts))
	return nil
}

func pendingNote(final *url.URL) string {
	if final.Query().Get("notice") == "pending" {
		return " (stored; the chat says it reaches the clinic shortly)"
	}
	return ""
}

// ---- the simulated phone ------------------------------------------------------------------

// simPhone plays the patient's phone on the simulator's page.
type simPhone struct {
	base, number string
	http         *http.Client
	// mark is how many texts the phone had received before the awaited one.
	mark int
}

// send texts the clinic through the phone page's form, as typed there, and returns the
// clinic number the form texted.
func (p *simPhone) send(ctx context.Context, body string) (string, error) {
	pageURL := p.base + "/phone/" + url.PathEscape(p.number)
	page, _, err := getPage(ctx, p.http, pageURL)
	if err != nil {
		return "", fmt.Errorf("failed to open the simulated phone: %w", err)
	}
	csrf := hiddenField(page, "csrf")
	if csrf == "" {
		return "", fmt.Errorf("the simulated phone page has no CSRF field")
	}
	clinic := inputValue(page, "to")
	if clinic == "" {
		clinic = clinicNumber
	}
	page, final, err := postForm(ctx, p.http, pageURL+"/send", url.Values{"csrf": {csrf}, "to": {clinic}, "body": {body}})
	if err != nil {
		return "", fmt.Errorf("failed to send the text: %w", err)
	} else if final.Query().Get("sent") == "" {
		return "", fmt.Errorf("the simulator did not send the text: %s", firstMatch(page, `(?s)<p class="error" role="alert">(.*?)</p>`))
	}
	return clinic, nil
}

// inbox is what the clinic texted the patient, oldest first.
func (p *simPhone) inbox(ctx context.Context) ([]twiliosim.Text, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/phone/"+url.PathEscape(p.number)+"/messages.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to read the simulated phone's texts: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the simulated phone's texts answered HTTP %d", resp.StatusCode)
	}
	var feed struct {
		Messages []twiliosim.Text `json:"messages"`
	}
	if err = decodeJSON(resp.Body, &feed); err != nil {
		return nil, fmt.Errorf("failed to read the simulated phone's texts: %w", err)
	}
	return feed.Messages, nil
}

func (p *simPhone) count(ctx context.Context) (int, error) {
	texts, err := p.inbox(ctx)
	return len(texts), err
}

// wait polls the inbox for a text after mark that matches.
func (p *simPhone) wait(ctx context.Context, what string, match func(twiliosim.Text) bool) (twiliosim.Text, error) {
	deadline := time.Now().Add(scriptWait)
	for {
		texts, err := p.inbox(ctx)
		if err != nil {
			return twiliosim.Text{}, err
		}
		for i := p.mark; i < len(texts); i++ {
			if match(texts[i]) {
				p.mark = i + 1
				return texts[i], nil
			}
		}
		if time.Now().After(deadline) {
			return twiliosim.Text{}, fmt.Errorf("timed out after %s waiting for %s on the patient's phone (%d new texts, none matched)",
				scriptWait, what, len(texts)-p.mark)
		}
		select {
		case <-ctx.Done():
			return twiliosim.Text{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ---- the browser ----------------------------------------------------------------------------

// newBrowser is a browser without JavaScript: it keeps cookies and follows redirects.
func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: scriptWait}
}

func getPage(ctx context.Context, c *http.Client, u string) (string, *url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", nil, err
	}
	return doPage(c, req)
}

func postForm(ctx context.Context, c *http.Client, u string, form url.Values) (string, *url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return doPage(c, req)
}

// uploadFile posts the upload form as a browser does: the CSRF field, then the file.
func uploadFile(ctx context.Context, c *http.Client, u, csrf, name, contentType string, data []byte) (string, *url.URL, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("csrf", csrf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	h.Set("Content-Type", contentType)
	part, err := mw.CreatePart(h)
	if err != nil {
		return "", nil, err
	}
	_, _ = part.Write(data)
	if err = mw.Close(); err != nil {
		return "", nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, &body)
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return doPage(c, req)
}

// doPage returns the page a request ends on (after redirects) and its URL; an error
// status is an error with the page's words.
func doPage(c *http.Client, req *http.Request) (string, *url.URL, error) {
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Accept-Language", "en")
	resp, err := c.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", nil, err
	}
	page := string(raw)
	if resp.StatusCode >= 400 {
		return page, resp.Request.URL, fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, resp.Request.URL.Path, pageError(page))
	}
	return page, resp.Request.URL, nil
}

// ---- what the script reads in pages and texts ------------------------------------------------

var (
	linkPattern = regexp.MustCompile(`https?://[^\s<>"']+`)
	codePattern = regexp.MustCompile(`(?i)\bcode is (\d{6})\b`)
	wordPattern = regexp.MustCompile(`[\p{L}\p{N}']+`)
	tagPattern  = regexp.MustCompile(`(?s)<[^>]*>`)
	chatItem    = regexp.MustCompile(`(?s)<li id="m\d+" class="msg (mine|theirs)">(.*?)</li>`)
)

// findLink is the first http(s) link in a text, without the sentence's final punctuation.
func findLink(text string) string {
	return strings.TrimRight(linkPattern.FindString(text), ".,;:!?)")
}

// findCode is the one-time code of a code text.
func findCode(text string) string {
	if m := codePattern.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}

// hiddenField is the value of the first hidden input with that name.
func hiddenField(page, name string) string {
	return firstMatch(page, `<input type="hidden" name="`+regexp.QuoteMeta(name)+`" value="([^"]*)"`)
}

// inputValue is the value of the input with that id.
func inputValue(page, inputID string) string {
	return firstMatch(page, `<input id="`+regexp.QuoteMeta(inputID)+`"[^>]*\svalue="([^"]*)"`)
}

// firstMatch is the first group of pattern in page, as text (tags dropped, unescaped,
// spaces collapsed).
func firstMatch(page, pattern string) string {
	m := regexp.MustCompile(pattern).FindStringSubmatch(page)
	if len(m) < 2 {
		return ""
	}
	return pageText(m[1])
}

func pageText(fragment string) string {
	return strings.Join(strings.Fields(html.UnescapeString(tagPattern.ReplaceAllString(fragment, " "))), " ")
}

// pageError is what a page says went wrong, for error messages.
func pageError(page string) string {
	for _, pattern := range []string{`(?s)role="alert"[^>]*>(.*?)</p>`, `(?s)<h1>(.*?)</h1>`} {
		if msg := firstMatch(page, pattern); msg != "" {
			return msg
		}
	}
	return "(the page says nothing more)"
}

// chatEntry is a message of the secure chat page.
type chatEntry struct {
	Mine   bool
	Sender string
	Text   string
}

// chatEntries reads the messages of the secure chat page, oldest first.
func chatEntries(page string) []chatEntry {
	var out []chatEntry
	for _, m := range chatItem.FindAllStringSubmatch(page, -1) {
		e := chatEntry{Mine: m[1] == "mine", Sender: firstMatch(m[2], `(?s)<span class="who">(.*?)</span>`)}
		if text := regexp.MustCompile(`(?s)<p class="text">(.*?)</p>`).FindStringSubmatch(m[2]); text != nil {
			// The text keeps its line breaks; only the template's escaping is undone.
			e.Text = html.UnescapeString(text[1])
		} else {
			e.Text = firstMatch(m[2], `alt="([^"]*)"`)
		}
		out = append(out, e)
	}
	return out
}

// leakedWords are the words of secret (four letters or more) that text carries, link
// left out: a token's letters are not words.
func leakedWords(text, secret string) []string {
	text = linkPattern.ReplaceAllString(text, " ")
	have := map[string]bool{}
	for _, w := range wordPattern.FindAllString(strings.ToLower(text), -1) {
		have[w] = true
	}
	var leaked []string
	seen := map[string]bool{}
	for _, w := range wordPattern.FindAllString(strings.ToLower(secret), -1) {
		if len([]rune(w)) >= 4 && have[w] && !seen[w] {
			leaked = append(leaked, w)
			seen[w] = true
		}
	}
	return leaked
}

// randomPatientNumber is a fictional US number, +1 555 01X XXXX, new on every run so
// that every run starts its own conversation.
func randomPatientNumber() string {
	for {
		n, err := rand.Int(rand.Reader, big.NewInt(100000))
		if err != nil {
			panic(err)
		}
		// The simulator never reaches numbers ending in its UnreachableSuffix.
		if number := fmt.Sprintf("+155501%05d", n.Int64()); !strings.HasSuffix(number, twiliosim.UnreachableSuffix) {
			return number
		}
	}
}

// rashPhoto is the patient's photo: a skin-coloured picture with red spots, of a phone
// photo's proportions and large enough to be shown sharp on a phone's screen (the page
// shows a preview of it, as of a real one).
func rashPhoto() ([]byte, error) {
	const scale = 12 // 1152×768
	const w, h = 96 * scale, 64 * scale
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{R: 236, G: 196, B: 170, A: 255}
			for _, spot := range [][2]int{{20, 18}, {40, 30}, {62, 22}, {75, 45}, {30, 48}, {52, 50}} {
				if dx, dy := x-spot[0]*scale, y-spot[1]*scale; dx*dx+dy*dy < 26*scale*scale {
					c = color.RGBA{R: 205, G: 60, B: 60, A: 255}
				}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("failed to draw the photo: %w", err)
	}
	return buf.Bytes(), nil
}

// ---- the staff member's Matrix client ---------------------------------------------------------

// staffClient is the nurse in an end-to-end encrypted Matrix client, as Element would be.
type staffClient struct {
	*staffclient.Client
	patient string // the patient's number (E.164)

	invites map[id.RoomID][]*event.Event
	// messages are the room messages received (decrypted when they were encrypted), in order.
	messages    []*event.Event
	receipts    []*event.Event
	decryptErrs []string
	// replyMark is where the patient's secure replies start in messages.
	replyMark int
}

// newStaffClient signs in as the demo's nurse on a new device with a fresh crypto store,
// and syncs in the background from now on.
func newStaffClient(ctx context.Context, hsURL, patient string) (*staffClient, error) {
	s := &staffClient{patient: patient, invites: map[id.RoomID][]*event.Event{}}
	initCtx, cancel := context.WithTimeout(ctx, scriptWait)
	defer cancel()
	c, err := staffclient.Login(initCtx, staffclient.Options{HomeserverURL: hsURL, Localpart: staffUser, Password: staffPassword,
		DeviceName: "carebridge demo script", PickleKey: "demo-script pickle key",
		DecryptError: func(evt *event.Event, err error) {
			s.Update(func() { s.decryptErrs = append(s.decryptErrs, fmt.Sprintf("%s in %s: %v", evt.ID, evt.RoomID, err)) })
		}})
	if err != nil {
		return nil, err
	}
	s.Client = c
	client := c.Matrix

	// Skip what happened before: an empty first sync gives the point to start from, so
	// earlier conversations' rooms are neither loaded nor decrypted.
	first, err := client.FullSyncRequest(initCtx, mautrix.ReqSync{FilterID: `{"room":{"rooms":[]},"presence":{"not_types":["*"]}}`})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("failed to sync as %s: %w", staffUser, err)
	}
	if err = client.Store.SaveNextBatch(initCtx, client.UserID, first.NextBatch); err != nil {
		s.close()
		return nil, err
	}

	syncer := client.Syncer.(*mautrix.DefaultSyncer)
	syncer.OnEvent(func(_ context.Context, evt *event.Event) {
		if evt.Mautrix.EventSource&event.SourceInvite != 0 {
			s.Update(func() { s.invites[evt.RoomID] = append(s.invites[evt.RoomID], evt) })
		}
	})
	syncer.OnEventType(event.EventMessage, func(_ context.Context, evt *event.Event) {
		s.Update(func() { s.messages = append(s.messages, evt) })
	})
	syncer.OnEventType(event.EphemeralEventReceipt, func(_ context.Context, evt *event.Event) {
		s.Update(func() { s.receipts = append(s.receipts, evt) })
	})
	c.StartSync()
	return s, nil
}

// close signs the device out (so demo runs leave no devices behind) and removes its keys.
func (s *staffClient) close() { s.Close(true) }

// mark is where messages received from now on start.
func (s *staffClient) mark() int {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return len(s.messages)
}

// wait returns once cond (called under the lock) holds, or fails after scriptWait.
func (s *staffClient) wait(ctx context.Context, what string, cond func() bool) error {
	waitCtx, cancel := context.WithTimeout(ctx, scriptWait)
	defer cancel()
	err := s.Wait(waitCtx, what, cond)
	if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	s.Mu.Lock()
	errs := s.decryptErrs
	s.Mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("timed out after %s waiting for %s; staff could not decrypt: %s", scriptWait, what, strings.Join(errs, "; "))
	}
	return fmt.Errorf("timed out after %s waiting for %s", scriptWait, what)
}

// waitInvite waits for the invitation to the patient's room: the room whose invite
// names the patient's number.
func (s *staffClient) waitInvite(ctx context.Context) (id.RoomID, error) {
	var found id.RoomID
	digits := strings.TrimPrefix(strings.TrimPrefix(s.patient, "+"), "1")
	err := s.wait(ctx, "the invitation to the patient's room (a number that texted this demo before has its room already and gets none)", func() bool {
		for roomID, state := range s.invites {
			if inviteIsFor(state, digits) {
				found = roomID
				return true
			}
		}
		return false
	})
	return found, err
}

// inviteIsFor reports whether an invite's state shows the patient's number in the room's
// name or topic (the demo does not mask names; the ghost's ID does not hold the number).
func inviteIsFor(state []*event.Event, nationalDigits string) bool {
	for _, evt := range state {
		var text string
		switch evt.Type {
		case event.StateRoomName:
			text = evt.Content.AsRoomName().Name
		case event.StateTopic:
			text = evt.Content.AsTopic().Topic
		default:
			continue
		}
		if onlyDigits(text) != "" && strings.Contains(onlyDigits(text), nationalDigits) {
			return true
		}
	}
	return false
}

func onlyDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// waitMessage waits for a message in the room, from index from on, that matches.
func (s *staffClient) waitMessage(ctx context.Context, roomID id.RoomID, from int, what string, match func(*event.Event) bool) (*event.Event, error) {
	var found *event.Event
	err := s.wait(ctx, what, func() bool {
		for _, evt := range s.messages[from:] {
			if evt.RoomID == roomID && match(evt) {
				found = evt
				return true
			}
		}
		return false
	})
	return found, err
}

// waitEncryptedRoom waits until the client knows the room is encrypted, so that what
// staff send is encrypted (the bridge drops anything else).
func (s *staffClient) waitEncryptedRoom(ctx context.Context, roomID id.RoomID) error {
	deadline := time.Now().Add(scriptWait)
	for {
		if ok, err := s.Matrix.StateStore.IsEncrypted(ctx, roomID); err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for the room's encryption state", scriptWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sendText sends a text message; the client encrypts it for the room's devices.
func (s *staffClient) sendText(ctx context.Context, roomID id.RoomID, body string) (id.EventID, error) {
	ctx, cancel := context.WithTimeout(ctx, scriptWait)
	defer cancel()
	resp, err := s.Matrix.SendMessageEvent(ctx, roomID, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: body})
	if err != nil {
		return "", fmt.Errorf("failed to send %q: %w", body, err)
	}
	return resp.EventID, nil
}

// downloadAttachment fetches a message's file and decrypts it when it is encrypted.
func (s *staffClient) downloadAttachment(ctx context.Context, msg *event.MessageEventContent) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, scriptWait)
	defer cancel()
	raw := msg.URL
	if msg.File != nil {
		raw = msg.File.URL
	}
	mxc, err := raw.Parse()
	if err != nil {
		return nil, fmt.Errorf("the photo's address %q is not an mxc:// URI: %w", raw, err)
	}
	data, err := s.Matrix.DownloadBytes(ctx, mxc)
	if err != nil {
		return nil, fmt.Errorf("failed to download the photo: %w", err)
	}
	if msg.File != nil {
		if err = msg.File.DecryptInPlace(data); err != nil {
			return nil, fmt.Errorf("failed to decrypt the photo: %w", err)
		}
	}
	return data, nil
}

// readReceipt waits briefly for the user's read receipt on the event (or a later one).
func (s *staffClient) readReceipt(roomID id.RoomID, eventID id.EventID, user id.UserID) (time.Time, bool) {
	var at time.Time
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.wait(ctx, "the read receipt", func() bool {
		for _, evt := range s.receipts {
			if evt.RoomID != roomID {
				continue
			}
			if r, ok := (*evt.Content.AsReceipt())[eventID][event.ReceiptTypeRead][user]; ok {
				at = r.Timestamp
				return true
			}
		}
		return false
	})
	return at, err == nil
}

func (s *staffClient) displayName(ctx context.Context, roomID id.RoomID, user id.UserID) string {
	if member, err := s.Matrix.StateStore.GetMember(ctx, roomID, user); err == nil && member != nil && member.Displayname != "" {
		return member.Displayname
	}
	return user.String()
}

func (s *staffClient) roomName(ctx context.Context, roomID id.RoomID) string {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	for _, evt := range s.invites[roomID] {
		if evt.Type == event.StateRoomName && evt.Content.AsRoomName().Name != "" {
			return fmt.Sprintf("%q (%s)", evt.Content.AsRoomName().Name, roomID)
		}
	}
	return roomID.String()
}

func decrypted(evt *event.Event) bool { return evt.Mautrix.EventSource&event.SourceDecrypted != 0 }

func decodeJSON(r io.Reader, v any) error {
	return json.NewDecoder(io.LimitReader(r, 8<<20)).Decode(v)
}
