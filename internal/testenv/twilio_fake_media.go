package testenv

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// twilioCDNPrefix is the path under which the fake CDN serves media bytes.
const twilioCDNPrefix = "/media.twiliocdn.com/"

type fakeTwilioMedia struct {
	accountSID, messageSID, mediaSID string
	contentType                      string
	data                             []byte
	cdnToken                         string
	created                          time.Time
}

// AddMedia stores a media file of the first account added and returns its Twilio URL,
// {URL()}/2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}, to
// pass to SendInbound. As on Twilio, that URL needs the account's basic auth and
// answers 307 to a CDN URL on another host, which serves the bytes and, like the S3
// presigned URLs Twilio hands out, refuses any request carrying an Authorization
// header. It panics when no account was added.
func (f *FakeTwilio) AddMedia(contentType string, data []byte) (url string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.accountOrder) == 0 {
		panic("FakeTwilio.AddMedia: add an account first")
	}
	m := &fakeTwilioMedia{
		accountSID:  f.accountOrder[0],
		messageSID:  newTwilioSID("MM"),
		mediaSID:    newTwilioSID("ME"),
		contentType: contentType,
		data:        bytes.Clone(data),
		cdnToken:    newTwilioSID(""),
		created:     time.Now().UTC(),
	}
	f.media[m.mediaSID] = m
	f.cdnObjects[m.cdnToken] = m
	return fmt.Sprintf("%s%s%s/Messages/%s/Media/%s", f.server.URL, twilioAccountsPrefix, m.accountSID, m.messageSID, m.mediaSID)
}

// redirectMedia serves the authenticated media URL: a redirect to the CDN.
func (f *FakeTwilio) redirectMedia(w http.ResponseWriter, r *http.Request, acct *fakeTwilioAccount, messageSID, mediaSID string) {
	f.mu.Lock()
	m := f.media[mediaSID]
	f.mu.Unlock()
	if m == nil || m.accountSID != acct.sid || m.messageSID != messageSID {
		f.notFound(w, r)
		return
	}
	location := f.cdnBase + twilioCDNPrefix + m.accountSID + "/" + m.cdnToken
	w.Header().Set("Location", location)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusTemporaryRedirect)
}

// serveCDN serves media bytes to whoever holds the unguessable URL, as Twilio's CDN does.
func (f *FakeTwilio) serveCDN(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("Authorization") != "" {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; `+
			`only the X-Amz-Algorithm query parameter, Signature query string parameter or `+
			`the Authorization header should be specified</Message>`+
			`<ArgumentName>Authorization</ArgumentName></Error>`)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, twilioCDNPrefix)
	_, token, _ := strings.Cut(rest, "/")
	f.mu.Lock()
	m := f.cdnObjects[token]
	f.mu.Unlock()
	if !ok || m == nil {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusNotFound)
		_, _ = fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`)
		return
	}
	w.Header().Set("Content-Type", m.contentType)
	http.ServeContent(w, r, "", m.created, bytes.NewReader(m.data))
}
