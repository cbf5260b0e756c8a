package securechat

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/carebridge/carebridge/database"
)

const (
	// maxTextRunes is the longest text message a patient may send.
	maxTextRunes = 5000
	// maxTextFormBytes bounds the text form: 5000 characters, percent-encoded, and the token.
	maxTextFormBytes = 128 << 10
	// multipartOverhead is what an upload body may carry beyond the file itself.
	multipartOverhead = 64 << 10
	// messagePages bounds how many pages of 500 messages the chat page loads.
	messagePages = 20
)

// chatMessage is a message as the chat page shows it.
type chatMessage struct {
	ID          int64  `json:"id"`
	FromPatient bool   `json:"from_patient"`
	Sender      string `json:"sender"`
	Kind        string `json:"kind"`
	Text        string `json:"text"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size,omitempty"`
	Time        string `json:"time"`
	FileURL     string `json:"file_url,omitempty"`
	// Photos shown inline: the preview the page loads (the original on tap), the size it
	// is shown at (0: unknown) and words that say what it is.
	PreviewURL string `json:"preview_url,omitempty"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	Alt        string `json:"alt,omitempty"`

	TimeLabel string `json:"-"`
	SizeLabel string `json:"-"`
}

func (m chatMessage) IsImage() bool { return m.PreviewURL != "" }
func (m chatMessage) IsFile() bool  { return m.FileURL != "" && !m.IsImage() }

func (w *Web) chatMessage(lang string, msg *Message) chatMessage {
	out := chatMessage{ID: msg.ID, FromPatient: msg.FromPatient, Sender: msg.SenderName, Kind: string(msg.Kind),
		Text: msg.Text, ContentType: msg.ContentType, Size: msg.Size, Time: msg.CreatedAt.UTC().Format(time.RFC3339),
		TimeLabel: formatTime(lang, msg.CreatedAt, w.opts.Location), SizeLabel: formatSize(msg.Size)}
	switch {
	case msg.FromPatient:
		out.Sender = translate(lang, "chat.you")
	case out.Sender == "":
		out.Sender = w.svc.ClinicName
	case w.svc.ClinicName != "":
		// "Jane, Nurse — Riverside Clinic": who wrote, and for which clinic.
		out.Sender += " — " + w.svc.ClinicName
	}
	if msg.Kind != database.SecureText {
		out.FileURL = ChatPath + "/file/" + strconv.FormatInt(msg.ID, 10)
	}
	// HEIC, which only Safari shows, is offered as a file.
	if msg.Kind == database.SecureImage && inlinePhotoTypes[msg.ContentType] {
		out.PreviewURL, out.Width, out.Height = out.FileURL, msg.Width, msg.Height
		if msg.HasPreview {
			out.PreviewURL = out.FileURL + "/preview"
		}
		if msg.FromPatient {
			out.Alt = translate(lang, "chat.photo_you", out.TimeLabel)
		} else {
			out.Alt = translate(lang, "chat.photo_from", out.Sender, out.TimeLabel)
		}
	}
	return out
}

// session returns the open session of the request's cookie. With none, it answers
// itself (to the signed-out page, or 401 for the script) and returns nil.
func (w *Web) session(rw http.ResponseWriter, r *http.Request, touch bool) *Session {
	sess, err := w.lookupSession(r, touch)
	if err != nil {
		w.noSession(rw, r, err)
		return nil
	}
	return sess
}

func (w *Web) lookupSession(r *http.Request, touch bool) (*Session, error) {
	if touch {
		return w.svc.Session(r.Context(), w.sessionToken(r))
	}
	return w.svc.CheckSession(r.Context(), w.sessionToken(r))
}

func (w *Web) noSession(rw http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, ErrSessionEnded) {
		w.serverError(rw, r, err, "Failed to check a secure chat session")
		return
	}
	if w.sessionToken(r) != "" {
		w.setCookie(rw, w.sessionCookie(), "", true)
	}
	if wantsJSON(r) {
		writeJSON(rw, http.StatusUnauthorized, map[string]any{"error": translate(langOf(r), "notice.signedout.heading"),
			"signed_out": true})
		return
	}
	http.Redirect(rw, r, signedOut, http.StatusSeeOther)
}

// noScriptRefresh is how often a chat page without script loads itself again to show
// new messages: often enough to notice a reply, rarely enough not to take a text being
// typed (a reload loses it; the "Check for new messages" link reloads at once).
const noScriptRefresh = 2 * time.Minute

// handleChat is the chat page: the conversation, oldest first, and the forms. ?auto=1 is
// the page reloading itself (no script): that is not the patient's activity.
func (w *Web) handleChat(rw http.ResponseWriter, r *http.Request) {
	sess := w.session(rw, r, r.URL.Query().Get("auto") != "1")
	if sess == nil {
		return
	}
	var notice string
	if r.URL.Query().Get("notice") == "pending" {
		notice = translate(langOf(r), "chat.pending")
	}
	w.renderChat(rw, r, sess, http.StatusOK, func(v *view) { v.Notice = notice })
}

func (w *Web) renderChat(rw http.ResponseWriter, r *http.Request, sess *Session, status int, fill func(v *view)) {
	v := w.newView(r, ChatPath)
	v.setClinicPhone(sess.Conversation.ClinicPhone)
	v.Title = v.T("chat.title", w.svc.ClinicName)
	v.Script = true
	v.CSRF = sess.CSRF
	v.MaxUploadMB = w.maxUploadMB()
	v.MaxUploadBytes = int64(v.MaxUploadMB) << 20
	v.IdleMinutes = int(w.svc.Config.SessionIdle.Minutes())
	// Without script the page reloads itself for new messages, and once the session has
	// ended it lands on the signed-out page, so an abandoned phone stops showing it.
	v.RefreshAfter = int(min(noScriptRefresh, sess.Ends.Sub(w.svc.now())+2*time.Second).Seconds())
	v.RefreshAfter = max(v.RefreshAfter, 1)
	again := randomValue()[:8]
	v.RefreshURL, v.CheckURL = ChatPath+"?auto=1&r="+again+"#latest", ChatPath+"?r="+again+"#latest"
	// Messages returns 500 at a time; the newest must not be cut off.
	var after int64
	for range messagePages {
		msgs, err := w.svc.Messages(r.Context(), sess, after)
		if err != nil {
			w.serverError(rw, r, err, "Failed to load secure messages")
			return
		}
		for _, msg := range msgs {
			v.Messages = append(v.Messages, w.chatMessage(v.Lang, msg))
			after = msg.ID
		}
		if len(msgs) < 500 {
			break
		}
	}
	v.LastID = after
	act, err := w.svc.activity(r.Context(), sess.Conversation, v.Lang)
	if err != nil {
		w.serverError(rw, r, err, "Failed to load the clinic's activity")
		return
	}
	if n := len(v.Messages); n > 0 && v.Messages[n-1].FromPatient && v.Messages[n-1].ID <= act.Seen {
		v.Seen = true
	}
	v.TypingText = act.Typing
	if fill != nil {
		fill(v)
	}
	w.render(rw, r, status, "chat", v)
}

// sent answers a stored message: the script gets JSON, a form is redirected (PRG).
func (w *Web) sent(rw http.ResponseWriter, r *http.Request, msg *Message, deliveryErr error) {
	target := ChatPath + "#latest"
	if deliveryErr != nil {
		// Stored, shown in the chat, but not yet in the room.
		logOf(r).Err(deliveryErr).Int64("secure_message_id", msg.ID).Msg("Secure chat message not yet delivered to the room")
		target = ChatPath + "?notice=pending#latest"
	}
	if wantsJSON(r) {
		writeJSON(rw, http.StatusOK, map[string]any{"id": msg.ID, "pending": deliveryErr != nil})
		return
	}
	http.Redirect(rw, r, target, http.StatusSeeOther)
}

// handleSend stores a text from the write form.
func (w *Web) handleSend(rw http.ResponseWriter, r *http.Request) {
	sess := w.session(rw, r, true)
	if sess == nil {
		return
	}
	r.Body = http.MaxBytesReader(rw, r.Body, maxTextFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			w.chatError(rw, r, sess, http.StatusRequestEntityTooLarge, "err.too_long", "", false)
		} else {
			w.chatError(rw, r, sess, http.StatusBadRequest, "err.empty", "", false)
		}
		return
	}
	if !sameToken(sess.CSRF, r.PostFormValue("csrf")) {
		w.csrfFailed(rw, r, ChatPath)
		return
	}
	text := strings.TrimSpace(strings.ReplaceAll(strings.ToValidUTF8(r.PostFormValue("text"), "\uFFFD"), "\r\n", "\n"))
	switch {
	case text == "":
		w.chatError(rw, r, sess, http.StatusBadRequest, "err.empty", "", false)
		return
	case utf8.RuneCountInString(text) > maxTextRunes:
		w.chatError(rw, r, sess, http.StatusBadRequest, "err.too_long", text, false)
		return
	}
	msg, err := w.svc.AddPatientMessage(r.Context(), sess, database.SecureText, text, "", nil)
	if msg == nil {
		w.serverError(rw, r, err, "Failed to store a secure chat message")
		return
	}
	w.sent(rw, r, msg, err)
}

// chatError shows the chat page again with what went wrong next to the form (the
// draft kept), or tells the script.
func (w *Web) chatError(rw http.ResponseWriter, r *http.Request, sess *Session, status int, key, draft string, upload bool) {
	lang := langOf(r)
	msg := translate(lang, key)
	if key == "err.upload_large" {
		msg = translate(lang, key, w.maxUploadMB())
	}
	if wantsJSON(r) {
		writeJSON(rw, status, map[string]any{"error": msg})
		return
	}
	w.renderChat(rw, r, sess, status, func(v *view) {
		if upload {
			v.UploadError = msg
		} else {
			v.SendError, v.Draft = msg, draft
		}
	})
}

func (w *Web) maxUploadMB() int {
	if w.svc.Config.MaxUploadMB > 0 {
		return w.svc.Config.MaxUploadMB
	}
	return 20
}

// handleUpload stores a photo or PDF. Its type comes from its bytes, not from what the
// browser declared; a body over the limit is read to its end (within a bound), so the
// browser sees the answer rather than a reset connection.
func (w *Web) handleUpload(rw http.ResponseWriter, r *http.Request) {
	original := r.Body
	limit := int64(w.maxUploadMB()) << 20
	drain := func() { _, _ = io.CopyN(io.Discard, original, max(4*limit, 64<<20)) }
	sess, err := w.lookupSession(r, true)
	if err != nil {
		if w.sessionToken(r) != "" {
			drain() // a patient whose session just ended; a request without a cookie is not read
		}
		w.noSession(rw, r, err)
		return
	}
	if r.ContentLength > limit+multipartOverhead {
		drain()
		w.chatError(rw, r, sess, http.StatusRequestEntityTooLarge, "err.upload_large", "", true)
		return
	}
	r.Body = http.MaxBytesReader(rw, original, limit+multipartOverhead)
	up, err := readUpload(r, limit)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge) || errors.Is(err, ErrUploadTooLarge):
		drain()
		w.chatError(rw, r, sess, http.StatusRequestEntityTooLarge, "err.upload_large", "", true)
		return
	case err != nil:
		w.chatError(rw, r, sess, http.StatusBadRequest, "err.upload_none", "", true)
		return
	case !sameToken(sess.CSRF, up.CSRF):
		w.csrfFailed(rw, r, ChatPath)
		return
	case up.Data == nil:
		w.chatError(rw, r, sess, http.StatusBadRequest, "err.upload_none", "", true)
		return
	}
	typ, ok := sniffUpload(up.Data)
	if !ok {
		w.chatError(rw, r, sess, http.StatusUnsupportedMediaType, "err.upload_type", "", true)
		return
	}
	name := sanitizeFileName(up.FileName, typ)
	msg, err := w.svc.AddPatientMessage(r.Context(), sess, typ.Kind, name, typ.ContentType, up.Data)
	if errors.Is(err, ErrUploadType) {
		w.chatError(rw, r, sess, http.StatusUnsupportedMediaType, "err.upload_type", "", true)
		return
	} else if msg == nil {
		w.serverError(rw, r, err, "Failed to store a secure chat upload")
		return
	}
	w.sent(rw, r, msg, err)
}

// handleFile serves an attachment of the session's conversation.
func (w *Web) handleFile(rw http.ResponseWriter, r *http.Request) {
	sess := w.session(rw, r, true)
	if sess == nil {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		w.fileNotFound(rw, r)
		return
	}
	msg, data, err := w.svc.File(r.Context(), sess, id)
	if errors.Is(err, ErrNotFound) {
		w.fileNotFound(rw, r)
		return
	} else if err != nil {
		w.serverError(rw, r, err, "Failed to open a secure chat attachment")
		return
	}
	contentType := "application/octet-stream"
	if parsed, _, err := mime.ParseMediaType(msg.ContentType); err == nil && strings.Count(parsed, "/") == 1 {
		contentType = parsed
	}
	disposition := "attachment"
	if msg.Kind == database.SecureImage && inlinePhotoTypes[contentType] {
		disposition = "inline"
	}
	// Named by the type it is served as, whatever name it was stored under.
	name := sanitizeFileName(msg.Text, uploadType{ContentType: contentType, Kind: msg.Kind})
	if value := mime.FormatMediaType(disposition, map[string]string{"filename": name}); value != "" {
		disposition = value
	}
	hdr := rw.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Content-Disposition", disposition)
	hdr.Set("Content-Length", strconv.Itoa(len(data)))
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	_, _ = rw.Write(data)
}

// handlePreview serves a photo's preview, the small copy the chat page shows.
func (w *Web) handlePreview(rw http.ResponseWriter, r *http.Request) {
	sess := w.session(rw, r, false)
	if sess == nil {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		w.fileNotFound(rw, r)
		return
	}
	thumb, err := w.svc.Preview(r.Context(), sess, id)
	if errors.Is(err, ErrNotFound) {
		w.fileNotFound(rw, r)
		return
	} else if err != nil {
		w.serverError(rw, r, err, "Failed to open a secure chat photo preview")
		return
	}
	hdr := rw.Header()
	hdr.Set("Content-Type", "image/jpeg")
	hdr.Set("Content-Disposition", "inline")
	hdr.Set("Content-Length", strconv.Itoa(len(thumb)))
	_, _ = rw.Write(thumb)
}

func (w *Web) fileNotFound(rw http.ResponseWriter, r *http.Request) {
	w.notice(rw, r, http.StatusNotFound, "notfound", ChatPath, func(v *view) {
		v.BackURL, v.BackLabel = ChatPath, v.T("notice.back_chat")
	})
}

// handleMessages gives the script the messages after an ID (JSON). It is called when the
// event stream signals a change; active=1 says the patient did something since the
// last call, which keeps the session from timing out while they type.
func (w *Web) handleMessages(rw http.ResponseWriter, r *http.Request) {
	r.Header.Set("Accept", "application/json")
	sess := w.session(rw, r, r.URL.Query().Get("active") == "1")
	if sess == nil {
		return
	}
	after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if err != nil || after < 0 {
		writeJSON(rw, http.StatusBadRequest, map[string]any{"error": "after must be a message ID"})
		return
	}
	msgs, err := w.svc.Messages(r.Context(), sess, after)
	if err != nil {
		w.serverError(rw, r, err, "Failed to load secure messages")
		return
	}
	lang := langOf(r)
	out := make([]chatMessage, 0, len(msgs))
	for _, msg := range msgs {
		out = append(out, w.chatMessage(lang, msg))
	}
	act, err := w.svc.activity(r.Context(), sess.Conversation, lang)
	if err != nil {
		w.serverError(rw, r, err, "Failed to load the clinic's activity")
		return
	}
	writeJSON(rw, http.StatusOK, map[string]any{"messages": out, "more": len(msgs) == 500,
		"seen": act.Seen, "typing": act.Typing, "typing_ms": act.TypingMS})
}

// handleSignOut ends the session at once.
func (w *Web) handleSignOut(rw http.ResponseWriter, r *http.Request) {
	token := w.sessionToken(r)
	sess, err := w.svc.Session(r.Context(), token)
	if errors.Is(err, ErrSessionEnded) {
		w.setCookie(rw, w.sessionCookie(), "", true)
		http.Redirect(rw, r, signedOut, http.StatusSeeOther)
		return
	} else if err != nil {
		w.serverError(rw, r, err, "Failed to check a secure chat session")
		return
	}
	r.Body = http.MaxBytesReader(rw, r.Body, maxFormBytes)
	if err = r.ParseForm(); err != nil || !sameToken(sess.CSRF, r.PostFormValue("csrf")) {
		w.csrfFailed(rw, r, ChatPath)
		return
	}
	if err = w.svc.SignOut(r.Context(), sess); err != nil {
		w.serverError(rw, r, err, "Failed to end a secure chat session")
		return
	}
	w.setCookie(rw, w.sessionCookie(), "", true)
	http.Redirect(rw, r, signedOut, http.StatusSeeOther)
}

// handleSignedOut says the session has ended and how to come back.
func (w *Web) handleSignedOut(rw http.ResponseWriter, r *http.Request) {
	w.notice(rw, r, http.StatusOK, "signedout", signedOut, func(v *view) {
		v.Paragraphs = []string{v.T("notice.signedout.body"), v.T("notice.signedout.idle")}
		w.offerNewLink(v)
	})
}
