package twiliosim

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/carebridge/carebridge/sms"
)

// simulatorDeliverTimeout bounds how long the page waits for the bridge to store a text.
const simulatorDeliverTimeout = 30 * time.Second

// simulatorFormOverhead is what a send form may hold besides the photo.
const simulatorFormOverhead = 64 << 10

// simSendError is a refusal of the send form, in words for the person playing the patient.
type simSendError struct {
	status int
	words  string
}

// handleSend takes a text typed as the patient and hands it to the bridge as Twilio's
// inbound webhook form. On success it redirects back to the phone (Post/Redirect/Get);
// otherwise it shows the phone again with what went wrong and the text kept.
func (s *Simulator) handleSend(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, simulatorMaxPhotoBytes+simulatorFormOverhead)
	var parseErr error
	if mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mediaType == "multipart/form-data" {
		// Everything stays in memory: the limit above bounds it, and no photo touches disk.
		parseErr = r.ParseMultipartForm(simulatorMaxPhotoBytes + simulatorFormOverhead)
		if r.MultipartForm != nil {
			defer func() { _ = r.MultipartForm.RemoveAll() }()
		}
	} else {
		parseErr = r.ParseForm()
	}
	patient := r.PathValue("phone")
	if parseErr != nil {
		if !e164Pattern.MatchString(patient) {
			patient = ""
		}
		var tooBig *http.MaxBytesError
		if errors.As(parseErr, &tooBig) {
			s.renderSendError(w, patient, "", "", &simSendError{http.StatusRequestEntityTooLarge,
				"The photo is larger than 5 MB, so it was not sent. Choose a smaller photo."})
			return
		}
		s.renderSendError(w, patient, "", "", &simSendError{http.StatusBadRequest,
			"The form could not be read. Reload the page and try again."})
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrfToken)) != 1 {
		http.Error(w, "This form is out of date or did not come from the simulator's page. Reload the page and send again.",
			http.StatusForbidden)
		return
	}

	to := strings.TrimSpace(r.PostForm.Get("to"))
	body := strings.ReplaceAll(r.PostForm.Get("body"), "\r\n", "\n")
	if strings.TrimSpace(body) == "" {
		body = ""
	}
	if e164, ok := s.normalizeTyped(patient); ok {
		patient = e164
	} else {
		s.renderSendError(w, "", to, body, &simSendError{http.StatusBadRequest, simPhoneError("The patient number", patient)})
		return
	}
	if to == "" {
		s.mu.Lock()
		to = s.defaultClinicLocked(patient)
		s.mu.Unlock()
	} else if e164, ok := s.normalizeTyped(to); ok {
		to = e164
	}
	photo, sendErr := readPhoto(r)
	if sendErr == nil {
		sendErr = checkSimulatedText(to, body, photo)
	}
	if sendErr != nil {
		s.renderSendError(w, patient, to, body, sendErr)
		return
	}
	if s.deliver == nil {
		s.renderSendError(w, patient, to, body, &simSendError{http.StatusServiceUnavailable,
			"The simulator is not connected to the bridge, so the text was not sent. Check the bridge's simulator settings."})
		return
	}

	var mediaURLs, mediaTypes []string
	if photo != nil {
		photo.id = randomHex(16)
		photo.added = time.Now()
		s.mu.Lock()
		s.media.add(photo)
		s.mu.Unlock()
		mediaURLs = []string{s.publicBaseFor(r) + s.basePath + "/media/" + photo.id}
		mediaTypes = []string{photo.contentType}
	}
	form := s.inboundForm(patient, to, body, mediaURLs, photo)
	ctx, cancel := context.WithTimeout(r.Context(), simulatorDeliverTimeout)
	err := s.deliver(ctx, form)
	cancel()
	if err != nil {
		if photo != nil {
			s.mu.Lock()
			s.media.remove(photo.id)
			s.mu.Unlock()
		}
		s.renderSendError(w, patient, to, body, &simSendError{http.StatusBadGateway, fmt.Sprintf(
			"The bridge did not store the text, so the clinic will not see it. Try sending it again. (What the bridge said: %v)", err)})
		return
	}
	s.mu.Lock()
	s.addSentLocked(Text{
		SID:       form.Get("MessageSid"),
		From:      patient,
		To:        to,
		Body:      body,
		MediaURLs: mediaURLs,
		Time:      time.Now(),

		mediaTypes: mediaTypes,
	})
	s.mu.Unlock()
	http.Redirect(w, r, s.phoneURL(patient)+"?sent=1#latest", http.StatusSeeOther)
}

func (s *Simulator) renderSendError(w http.ResponseWriter, patient, to, body string, err *simSendError) {
	s.renderPage(w, err.status, patient, simPageData{To: to, Body: body, Error: err.words})
}

// readPhoto reads the optional photo upload. Its type is sniffed from its bytes: what the
// browser claims is ignored.
func readPhoto(r *http.Request) (*simMedia, *simSendError) {
	file, header, err := r.FormFile("photo")
	if errors.Is(err, http.ErrMissingFile) || errors.Is(err, http.ErrNotMultipart) {
		// No photo chosen, or a plain form without a file part (a text only).
		return nil, nil
	} else if err != nil {
		return nil, &simSendError{http.StatusBadRequest, "The photo could not be read. Choose it again."}
	}
	defer file.Close()
	if header.Size > simulatorMaxPhotoBytes {
		return nil, &simSendError{http.StatusRequestEntityTooLarge, "The photo is larger than 5 MB, so it was not sent. Choose a smaller photo."}
	}
	data, err := io.ReadAll(io.LimitReader(file, simulatorMaxPhotoBytes+1))
	switch {
	case err != nil:
		return nil, &simSendError{http.StatusBadRequest, "The photo could not be read. Choose it again."}
	case len(data) > simulatorMaxPhotoBytes:
		return nil, &simSendError{http.StatusRequestEntityTooLarge, "The photo is larger than 5 MB, so it was not sent. Choose a smaller photo."}
	case len(data) == 0:
		return nil, &simSendError{http.StatusBadRequest, "The photo file is empty. Choose another photo."}
	}
	contentType, sniffed := sniffPhoto(data)
	if contentType == "" {
		if mediaType, _, err := mime.ParseMediaType(sniffed); err == nil {
			sniffed = mediaType
		}
		return nil, &simSendError{http.StatusUnsupportedMediaType, fmt.Sprintf(
			"The photo must be a JPEG, PNG or GIF picture; this file is %s. Choose a picture.", sniffed)}
	}
	return &simMedia{data: data, contentType: contentType}, nil
}

// checkSimulatedText refuses what Twilio would not deliver as an inbound text.
func checkSimulatedText(to, body string, photo *simMedia) *simSendError {
	switch {
	case to == "":
		return &simSendError{http.StatusBadRequest, "Type the clinic number to text, such as (555) 010-0100."}
	case !e164Pattern.MatchString(to):
		return &simSendError{http.StatusBadRequest, simPhoneError("The clinic number", to)}
	case body == "" && photo == nil:
		return &simSendError{http.StatusBadRequest, "Type a message or choose a photo to send."}
	case utf8.RuneCountInString(body) > sms.MaxBodyChars:
		return &simSendError{http.StatusBadRequest, fmt.Sprintf(
			"The message is %d characters long; a text holds at most 1,600. Shorten it and send again.", utf8.RuneCountInString(body))}
	}
	return nil
}

// publicBaseFor is where the bridge (and the page) fetch the simulator's media: the
// configured public URL, else the URL this request came to.
func (s *Simulator) publicBaseFor(r *http.Request) string {
	if s.publicBase != "" {
		return s.publicBase
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// inboundForm is Twilio's inbound message webhook form for a text from patient to the
// clinic number, with the same fields Twilio sends. Twilio knows only the country of
// fictional numbers, so city, state and zip are empty, as they are from Twilio.
func (s *Simulator) inboundForm(patient, clinic, body string, mediaURLs []string, photo *simMedia) url.Values {
	prefix := "SM"
	if len(mediaURLs) > 0 {
		prefix = "MM"
	}
	sid := newSimulatedSID(prefix)
	accountSID := DemoAccountSID
	s.mu.Lock()
	if num := s.clinics[clinic]; num != nil {
		accountSID = num.accountSID
	}
	s.mu.Unlock()
	segments, _ := sms.CountSegments(body)
	form := url.Values{
		"ToCountry":     {simCountry(clinic)},
		"ToState":       {""},
		"SmsMessageSid": {sid},
		"NumMedia":      {strconv.Itoa(len(mediaURLs))},
		"ToCity":        {""},
		"FromZip":       {""},
		"SmsSid":        {sid},
		"FromState":     {""},
		"SmsStatus":     {"received"},
		"FromCity":      {""},
		"Body":          {body},
		"FromCountry":   {simCountry(patient)},
		"To":            {clinic},
		"ToZip":         {""},
		"NumSegments":   {strconv.Itoa(max(segments, 1))},
		"MessageSid":    {sid},
		"AccountSid":    {accountSID},
		"From":          {patient},
		"ApiVersion":    {"2010-04-01"},
	}
	for i, u := range mediaURLs {
		form.Set("MediaUrl"+strconv.Itoa(i), u)
		if photo != nil {
			form.Set("MediaContentType"+strconv.Itoa(i), photo.contentType)
		}
	}
	return form
}

// simCountry is the ToCountry/FromCountry Twilio derives from the calling code.
func simCountry(e164 string) string {
	for _, c := range []struct{ prefix, country string }{
		{"+1", "US"}, {"+44", "GB"}, {"+49", "DE"}, {"+33", "FR"}, {"+34", "ES"},
		{"+39", "IT"}, {"+31", "NL"}, {"+61", "AU"}, {"+353", "IE"}, {"+64", "NZ"},
	} {
		if strings.HasPrefix(e164, c.prefix) {
			return c.country
		}
	}
	return ""
}
