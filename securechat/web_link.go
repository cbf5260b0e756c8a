package securechat

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// maxFormBytes bounds the body of the link and code forms.
const maxFormBytes = 16 << 10

// handleLink is the page a texted link opens. It only reads: SMS apps and scanners
// fetch links for previews, so nothing is sent until the patient taps the button.
func (w *Web) handleLink(rw http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	link, err := w.svc.OpenLink(r.Context(), token)
	if err != nil {
		w.linkError(rw, r, link, err)
		return
	}
	v := w.newView(r, LinkPath+token)
	v.Title = v.T("link.title", w.svc.ClinicName)
	v.Token = token
	v.CSRF = w.preSessionCSRF(rw, r)
	v.PhoneEnd = phoneEnd(link.Conversation.PatientPhone)
	v.setClinicPhone(link.Conversation.ClinicPhone)
	w.render(rw, r, http.StatusOK, "link", v)
}

// handleSendCode texts a code (the button of the link page) and goes to the code page.
func (w *Web) handleSendCode(rw http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	r.Body = http.MaxBytesReader(rw, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil || !w.checkPreSessionCSRF(r) {
		w.csrfFailed(rw, r, LinkPath+token)
		return
	}
	err := w.svc.SendCode(r.Context(), token, langOf(r))
	switch {
	case err == nil:
		http.Redirect(rw, r, LinkPath+token+"/verify?sent=1", http.StatusSeeOther)
	case errors.Is(err, ErrRateLimited):
		w.codePage(rw, r, token, http.StatusTooManyRequests, "err.rate_limited", false)
	case errIs(err, ErrLinkUnknown, ErrLinkExpired, ErrLinkRevoked, ErrLinkLocked):
		link, _ := w.svc.CheckLink(r.Context(), token)
		w.linkError(rw, r, link, err)
	default:
		logOf(r).Err(err).Msg("Failed to text a secure chat code")
		w.codePage(rw, r, token, http.StatusServiceUnavailable, "err.sms_failed", false)
	}
}

// handleCodePage shows the code form (after the code was sent, or opened directly).
func (w *Web) handleCodePage(rw http.ResponseWriter, r *http.Request) {
	w.codePage(rw, r, r.PathValue("token"), http.StatusOK, "", r.URL.Query().Get("sent") == "1")
}

func (w *Web) codePage(rw http.ResponseWriter, r *http.Request, token string, status int, errKey string, sent bool) {
	link, err := w.svc.CheckLink(r.Context(), token)
	if err != nil {
		w.linkError(rw, r, link, err)
		return
	}
	v := w.newView(r, LinkPath+token+"/verify")
	v.Title = v.T("code.title")
	v.Script, v.JS = true, assetPrefix+"code.js?v="+w.assetVersion
	v.Token = token
	v.CSRF = w.preSessionCSRF(rw, r)
	v.PhoneEnd = phoneEnd(link.Conversation.PatientPhone)
	v.setClinicPhone(link.Conversation.ClinicPhone)
	v.Minutes = int(w.svc.Config.CodeLifetime.Minutes())
	v.NeedDOB = link.Conversation.DOBHash != ""
	v.Sent = sent
	v.Preloads = w.opts.CodePagePreloads
	if errKey == "err.wrong" && v.NeedDOB {
		errKey = "err.wrong_dob" // the date of birth is named only where it was asked
	}
	if errKey != "" {
		v.Error = v.T(errKey)
	}
	// The database counts the wrong answers (secure_link.failed_codes): the last two tries
	// are announced, so the lock comes as no surprise.
	switch left := w.svc.Config.MaxWrongCodes - link.Row.FailedCodes; {
	case link.Row.FailedCodes == 0 || left > 2 || left < 1:
	case left == 1:
		v.Warning = v.T("code.try_left")
	default:
		v.Warning = v.T("code.tries_left", left)
	}
	w.render(rw, r, status, "code", v)
}

// handleVerify checks the code (and date of birth) and starts the session.
func (w *Web) handleVerify(rw http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	r.Body = http.MaxBytesReader(rw, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil || !w.checkPreSessionCSRF(r) {
		w.csrfFailed(rw, r, LinkPath+token+"/verify")
		return
	}
	link, err := w.svc.CheckLink(r.Context(), token)
	if err != nil {
		w.linkError(rw, r, link, err)
		return
	}
	// A malformed answer is not a guess: it is sent back without counting.
	code, ok := normalizeCode(r.PostFormValue("code"))
	if !ok {
		w.codePage(rw, r, token, http.StatusBadRequest, "err.code_format", false)
		return
	}
	dob := ""
	if link.Conversation.DOBHash != "" {
		if dob, ok = formDOB(r); !ok {
			w.codePage(rw, r, token, http.StatusBadRequest, "err.dob_format", false)
			return
		}
	}
	session, _, err := w.svc.Verify(r.Context(), token, code, dob)
	switch {
	case err == nil:
		w.setCookie(rw, w.sessionCookie(), session, false)
		http.Redirect(rw, r, ChatPath, http.StatusSeeOther)
	case errors.Is(err, ErrWrongCode):
		w.codePage(rw, r, token, http.StatusBadRequest, "err.wrong", false)
	case errors.Is(err, ErrCodeExpired):
		w.codePage(rw, r, token, http.StatusBadRequest, "err.code_expired", false)
	case errors.Is(err, ErrNoCode):
		w.codePage(rw, r, token, http.StatusBadRequest, "err.no_code", false)
	case errIs(err, ErrLinkUnknown, ErrLinkExpired, ErrLinkRevoked, ErrLinkLocked):
		link, _ = w.svc.CheckLink(r.Context(), token)
		w.linkError(rw, r, link, err)
	default:
		w.serverError(rw, r, err, "Failed to check a secure chat code")
	}
}

// linkError tells the patient, in plain words, that the link cannot be used and how to
// get a new one: text the clinic (with a button that opens the SMS app).
func (w *Web) linkError(rw http.ResponseWriter, r *http.Request, link *Link, err error) {
	var kind string
	var status int
	switch {
	case errors.Is(err, ErrLinkUnknown):
		kind, status = "unknown", http.StatusNotFound
	case errors.Is(err, ErrLinkExpired):
		kind, status = "expired", http.StatusGone
	case errors.Is(err, ErrLinkRevoked):
		kind, status = "revoked", http.StatusGone
	case errors.Is(err, ErrLinkLocked):
		kind, status = "locked", http.StatusForbidden
	default:
		w.serverError(rw, r, err, "Failed to look up a secure chat link")
		return
	}
	w.notice(rw, r, status, kind, r.URL.Path, func(v *view) {
		clinic := w.svc.ClinicName
		if clinic == "" {
			clinic = v.T("notice.clinic")
		}
		v.Paragraphs = []string{v.T("notice."+kind+".body", clinic)}
		// The link's own clinic number; for an unknown link, the configured one.
		if link != nil && link.Conversation != nil {
			v.setClinicPhone(link.Conversation.ClinicPhone)
		}
		w.offerNewLink(v)
	})
}

// offerNewLink puts the "Text the clinic" button on a notice page: it opens a text to the
// clinic's number (the footer's) that already asks for a new link.
func (w *Web) offerNewLink(v *view) {
	if v.clinicPhone == "" {
		return
	}
	v.SMSLink = smsLink(v.clinicPhone, v.T("notice.new_link_text"))
	v.ClinicPhone = v.FooterPhone
}

// csrfFailed answers a form without its token: nothing was done.
func (w *Web) csrfFailed(rw http.ResponseWriter, r *http.Request, back string) {
	if wantsJSON(r) {
		writeJSON(rw, http.StatusForbidden, map[string]any{"error": translate(langOf(r), "notice.csrf.body")})
		return
	}
	w.notice(rw, r, http.StatusForbidden, "csrf", back, func(v *view) {
		v.BackURL, v.BackLabel = back, v.T("notice.csrf.back")
	})
}

// normalizeCode accepts the code with spaces or dashes ("123 456") and checks it has 6 digits.
func normalizeCode(raw string) (string, bool) {
	code := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\u00a0' || r == '\t' {
			return -1
		}
		return r
	}, raw)
	if len(code) != 6 {
		return "", false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return code, true
}

// formDOB reads the date of birth from its three fields (or one YYYY-MM-DD field).
func formDOB(r *http.Request) (string, bool) {
	if raw := strings.TrimSpace(r.PostFormValue("dob")); raw != "" {
		dob, err := NormalizeDOB(raw)
		return dob, err == nil
	}
	month, err1 := strconv.Atoi(strings.TrimSpace(r.PostFormValue("dob_month")))
	day, err2 := strconv.Atoi(strings.TrimSpace(r.PostFormValue("dob_day")))
	year := strings.TrimSpace(r.PostFormValue("dob_year"))
	if err1 != nil || err2 != nil || len(year) != 4 {
		return "", false
	}
	dob, err := NormalizeDOB(fmt.Sprintf("%s-%02d-%02d", year, month, day))
	return dob, err == nil
}

// phoneEnd is the last two digits of a phone number, to recognise it by.
func phoneEnd(phone string) string {
	if len(phone) < 4 {
		return ""
	}
	return phone[len(phone)-2:]
}

func isE164(phone string) bool {
	if len(phone) < 8 || len(phone) > 16 || phone[0] != '+' {
		return false
	}
	for _, c := range phone[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// displayPhone writes a North American number as (555) 000-1111, others as stored.
func displayPhone(phone string) string {
	if len(phone) == 12 && strings.HasPrefix(phone, "+1") {
		return fmt.Sprintf("(%s) %s-%s", phone[2:5], phone[5:8], phone[8:])
	}
	return phone
}
