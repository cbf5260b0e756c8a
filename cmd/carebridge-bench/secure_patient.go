package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/securechat"
)

// The chat's event stream, as securechat/web.go registers it (chatPath + "/events").
const chatEventsPath = "/chat/events"

// sessionCookie is the secure chat's session cookie: the bridge under test is reached at
// http://127.0.0.1, where the pages drop the __Host- prefix.
const sessionCookie = "carebridge"

// patient is one patient's browser on the secure chat pages, spoken to as plain HTTP:
// the link page, the code form, the verify form and the chat's event stream. Its cookie
// jar keeps what the pages set (the form token, then the session), as a browser would.
type patient struct {
	phone  string
	portal string
	// token is the link's token: from the alert SMS (live), or stored by the bench.
	token string
	// code is the one-time code texted to the phone (read at the fake Twilio).
	code string
	// live patients have a Matrix room whose staff messages reach the chat.
	live bool
	room id.RoomID
	// verified is set once the code flow gave the browser its session cookie.
	verified bool

	client *http.Client
	csrf   string
}

// patientTransport is shared by every patient: one connection per open event stream,
// and a pool for the forms.
func patientTransport(streams int) *http.Transport {
	return &http.Transport{
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		// One stream per connection, as browsers open them over HTTP/1.1.
		MaxConnsPerHost: streams + 64,
	}
}

func newPatient(tr http.RoundTripper, phone string) *patient {
	jar, _ := cookiejar.New(nil)
	return &patient{phone: phone, portal: strings.TrimPrefix(phone, "+"), client: &http.Client{
		Transport: tr,
		Jar:       jar,
		// The pages answer forms with 303; the bench checks where they send the browser.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       time.Minute,
	}}
}

// do sends a request and drains the answer (pages are not read: they carry the link).
func (p *patient) do(ctx context.Context, method, rawURL string, form url.Values) (*http.Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		// Its URL holds the link's token, which the bench never prints.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp, nil
}

// requestCode opens the link page (which sets the form token) and taps "text me a code".
func (p *patient) requestCode(ctx context.Context, base string) error {
	link := base + securechat.LinkPath + p.token
	resp, err := p.do(ctx, http.MethodGet, link, nil)
	if err != nil {
		return fmt.Errorf("failed to open a link: %w", err)
	} else if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the link page answered HTTP %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "carebridge-csrf") {
			p.csrf = c.Value
		}
	}
	if p.csrf == "" {
		return fmt.Errorf("the link page set no form token cookie")
	}
	resp, err = p.do(ctx, http.MethodPost, link+"/code", url.Values{"csrf": {p.csrf}})
	if err != nil {
		return fmt.Errorf("failed to ask for a code: %w", err)
	} else if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "/verify") {
		return fmt.Errorf("asking for a code answered HTTP %d (expected 303 to the code page)", resp.StatusCode)
	}
	return nil
}

// verify enters the code; the answer is the session cookie and a redirect to the chat.
func (p *patient) verify(ctx context.Context, base string) error {
	resp, err := p.do(ctx, http.MethodPost, base+securechat.LinkPath+p.token+"/verify",
		url.Values{"csrf": {p.csrf}, "code": {p.code}})
	if err != nil {
		return fmt.Errorf("failed to enter a code: %w", err)
	} else if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/chat" {
		return fmt.Errorf("entering the right code answered HTTP %d (expected 303 to /chat)", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, sessionCookie) && c.Value != "" {
			p.verified = true
		}
	}
	if !p.verified {
		return fmt.Errorf("entering the right code set no session cookie")
	}
	return nil
}

// setSession gives the browser a session the bench stored itself.
func (p *patient) setSession(base, token string) {
	u, _ := url.Parse(base)
	p.client.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: token, Path: "/"}})
}

// stream is one open event stream of the chat page. Its reader counts what arrives.
type stream struct {
	body   io.ReadCloser
	cancel context.CancelFunc
	done   chan struct{}

	updates    atomic.Int64
	lastUpdate atomic.Int64 // unix nanoseconds
	keepalives atomic.Int64
	ended      atomic.Bool // the bridge said the session ended
	gone       atomic.Bool // the stream has ended (before close: the bridge ended it)
}

// openStream opens the chat's event stream with the session cookie and waits for its
// first event (": open"), which the bridge sends once it has subscribed the stream.
func (p *patient) openStream(ctx context.Context, base string) (*stream, error) {
	sctx, cancel := context.WithCancel(ctx)
	// Until the first event; the stream itself lives until the bench closes it.
	timer := time.AfterFunc(time.Minute, cancel)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, base+chatEventsPath, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	client := *p.client
	client.Timeout = 0
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("failed to open an event stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		_ = resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("the event stream answered HTTP %d (%s)", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	first, err := readEvent(r)
	if !timer.Stop() && err == nil {
		err = fmt.Errorf("it started after the minute the bench waits")
	}
	if err != nil || !strings.Contains(first, ": open") {
		_ = resp.Body.Close()
		cancel()
		if err == nil {
			err = fmt.Errorf("it started without ': open' (ended session?)")
		}
		return nil, fmt.Errorf("the event stream did not start: %w", err)
	}
	st := &stream{body: resp.Body, cancel: cancel, done: make(chan struct{})}
	go st.read(r)
	return st, nil
}

// readEvent reads one event: lines up to a blank line.
func readEvent(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return b.String(), err
		}
		if line == "\n" {
			return b.String(), nil
		}
		b.WriteString(line)
	}
}

func (st *stream) read(r *bufio.Reader) {
	defer close(st.done)
	for {
		ev, err := readEvent(r)
		if err != nil {
			st.gone.Store(true)
			return
		}
		switch {
		case strings.Contains(ev, "event: update"):
			st.lastUpdate.Store(time.Now().UnixNano())
			st.updates.Add(1)
		case strings.Contains(ev, "event: ended"):
			st.ended.Store(true)
		case strings.Contains(ev, ": keepalive"):
			st.keepalives.Add(1)
		}
	}
}

// close ends the stream from the browser's side, as closing the tab does.
func (st *stream) close() {
	st.cancel()
	_ = st.body.Close()
	<-st.done
}
