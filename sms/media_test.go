package sms_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
	"github.com/carebridge/carebridge/sms"
)

const (
	mediaTestAccountSID = "AC0d2f4b6a8c1e3a5c7e9b0d2f4a6c8e1b"
	mediaTestAuthToken  = "5f3e1d9c7b5a3f1e9d7c5b3a1f9e7d5c"
	mediaTestPath       = "/2010-04-01/Accounts/" + mediaTestAccountSID + "/Messages/MM7e5c3a1b9d8f6e4c2a0b8d6f4e2c0a9b/Media/ME3a1c5e7b9d0f2a4c6e8b0d2f4a6c8e0a"
)

// Small but real files: each starts with its format's signature.
var (
	mediaTestJPEG = append([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00}, bytes.Repeat([]byte{0x5A}, 2048)...)
	mediaTestPNG  = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0x01}, 512)...)
	mediaTestMP4  = append([]byte("\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"), bytes.Repeat([]byte{0x00}, 4096)...)
	mediaTestPDF  = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
	mediaTestVCF  = []byte("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Dr. Maria Núñez\r\nTEL;TYPE=WORK:+15550001111\r\nEND:VCARD\r\n")
)

// countingServer answers every request with handler and counts the requests.
type countingServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
}

func newCountingServer(t *testing.T, handler http.HandlerFunc) *countingServer {
	t.Helper()
	cs := &countingServer{}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		cs.requests = append(cs.requests, r.Clone(context.Background()))
		cs.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(cs.Close)
	return cs
}

func (cs *countingServer) received() []*http.Request {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]*http.Request(nil), cs.requests...)
}

func (cs *countingServer) host() string { return strings.TrimPrefix(cs.URL, "http://") }

func newTestMediaFetcher(allowedHosts ...string) *sms.MediaFetcher {
	return sms.NewMediaFetcher(sms.MediaFetcherOptions{
		AccountSID:   mediaTestAccountSID,
		AuthToken:    mediaTestAuthToken,
		AllowedHosts: allowedHosts,
		MaxBytes:     64 << 10,
		Timeout:      5 * time.Second,
	})
}

// requireMediaError checks err and that it gives away neither the token nor the path.
func requireMediaError(t *testing.T, err error, target error) {
	t.Helper()
	require.ErrorIs(t, err, target)
	assert.NotContains(t, err.Error(), mediaTestAuthToken)
	assert.NotContains(t, err.Error(), base64.StdEncoding.EncodeToString([]byte(mediaTestAccountSID+":"+mediaTestAuthToken)))
	assert.NotContains(t, err.Error(), "/Media/")
}

// TestMediaFetcherFromFakeTwilio downloads from the strict fake, which answers the
// authenticated media URL with a 307 to a CDN host that refuses any request carrying
// Authorization, as Twilio's S3 presigned URLs do.
func TestMediaFetcherFromFakeTwilio(t *testing.T) {
	fake := testenv.NewFakeTwilio()
	t.Cleanup(fake.Close)
	accountSID, authToken := testenv.NewTwilioSID("AC"), testenv.NewTwilioSID("")
	fake.AddAccount(accountSID, authToken)
	apiHost := strings.TrimPrefix(fake.URL(), "http://")
	fetcher := sms.NewMediaFetcher(sms.MediaFetcherOptions{
		AccountSID:   accountSID,
		AuthToken:    authToken,
		AllowedHosts: []string{apiHost},
		Timeout:      5 * time.Second,
	})

	tests := []struct {
		name        string
		contentType string
		data        []byte
		wantType    string
		wantName    string
	}{
		{"photo", "image/jpeg", mediaTestJPEG, "image/jpeg", "image.jpg"},
		{"screenshot", "image/png", mediaTestPNG, "image/png", "image.png"},
		{"video", "video/mp4", mediaTestMP4, "video/mp4", "video.mp4"},
		{"referral letter", "application/pdf", mediaTestPDF, "application/pdf", "file.pdf"},
		{"contact card with charset", "text/vcard; charset=utf-8", mediaTestVCF, "text/vcard", "contact.vcf"},
		{"legacy contact card", "text/x-vcard", mediaTestVCF, "text/x-vcard", "contact.vcf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mediaURL := fake.AddMedia(tt.contentType, tt.data)
			got, err := fetcher.Fetch(context.Background(), mediaURL)
			require.NoError(t, err)
			assert.Equal(t, tt.data, got.Data)
			assert.Equal(t, tt.wantType, got.ContentType)
			assert.Equal(t, tt.wantName, got.FileName)
		})
	}

	t.Run("wrong auth token", func(t *testing.T) {
		mediaURL := fake.AddMedia("image/jpeg", mediaTestJPEG)
		wrong := sms.NewMediaFetcher(sms.MediaFetcherOptions{AccountSID: accountSID, AuthToken: mediaTestAuthToken,
			AllowedHosts: []string{apiHost}, Timeout: 5 * time.Second})
		_, err := wrong.Fetch(context.Background(), mediaURL)
		requireMediaError(t, err, sms.ErrMediaUnavailable)
		assert.Contains(t, err.Error(), "401")
	})
	t.Run("unknown media", func(t *testing.T) {
		mediaURL := fake.AddMedia("image/jpeg", mediaTestJPEG)
		cut := strings.LastIndex(mediaURL, "/ME")
		_, err := fetcher.Fetch(context.Background(), mediaURL[:cut]+"/ME00000000000000000000000000000000")
		requireMediaError(t, err, sms.ErrMediaUnavailable)
		assert.Contains(t, err.Error(), "404")
	})
	t.Run("CDN host is not given the credentials directly", func(t *testing.T) {
		// Only the API host is allowed: a MediaUrl naming the CDN host is refused.
		mediaURL := fake.AddMedia("image/jpeg", mediaTestJPEG)
		u, err := url.Parse(mediaURL)
		require.NoError(t, err)
		u.Host = "127.0.0.2:" + u.Port()
		_, err = fetcher.Fetch(context.Background(), u.String())
		requireMediaError(t, err, sms.ErrMediaURLNotAllowed)
	})
}

// TestMediaFetcherRefusesWithoutRequest checks that a MediaUrl the bridge must not
// send credentials to causes no request at all.
func TestMediaFetcherRefusesWithoutRequest(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		_, _ = w.Write(mediaTestJPEG)
	})

	tests := []struct {
		name         string
		allowedHosts []string
		mediaURL     string
	}{
		{"forged host, default allowlist", nil, srv.URL + mediaTestPath},
		{"forged host, explicit allowlist", []string{"api.twilio.com"}, srv.URL + mediaTestPath},
		{"allowed host name on another port", []string{"127.0.0.1:1", "127.0.0.1"}, srv.URL + mediaTestPath},
		{"allowed host as user info", nil, "http://api.twilio.com@" + srv.host() + mediaTestPath},
		{"credentials in URL", []string{srv.host()}, "http://" + mediaTestAccountSID + ":x@" + srv.host() + mediaTestPath},
		{"allowed host as subdomain of another", nil, "https://api.twilio.com.attacker.example" + mediaTestPath},
		{"allowed host in path", nil, "https://attacker.example/api.twilio.com" + mediaTestPath},
		{"subdomain of allowed host", nil, "https://media.api.twilio.com" + mediaTestPath},
		{"non-default port", nil, "https://api.twilio.com:8443" + mediaTestPath},
		{"plain http to Twilio", nil, "http://api.twilio.com" + mediaTestPath},
		{"plain http to an allowed non-loopback host", []string{"twilio-sim.internal:8080"}, "http://twilio-sim.internal:8080" + mediaTestPath},
		{"ftp", nil, "ftp://api.twilio.com" + mediaTestPath},
		{"scheme-relative", nil, "//api.twilio.com" + mediaTestPath},
		{"no scheme", nil, "api.twilio.com" + mediaTestPath},
		{"opaque", nil, "https:api.twilio.com" + mediaTestPath},
		{"empty", nil, ""},
		{"not a URL", nil, "https://api.twilio.com/%zz"},
		{"trailing dot", nil, "https://api.twilio.com." + mediaTestPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fetcher := newTestMediaFetcher(tt.allowedHosts...)
			got, err := fetcher.Fetch(context.Background(), tt.mediaURL)
			requireMediaError(t, err, sms.ErrMediaURLNotAllowed)
			assert.Nil(t, got)
			assert.Empty(t, srv.received(), "no request may be made")
		})
	}
}

// TestMediaFetcherRedirectCredentials checks that only allowed hosts see the
// credentials. The redirect target is the same host name on another port, which Go's
// client would give the Authorization header: the fetcher's own rule must drop it.
func TestMediaFetcherRedirectCredentials(t *testing.T) {
	cdn := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "only one auth mechanism allowed", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(mediaTestPNG)
	})
	api := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, cdn.URL+"/media.twiliocdn.com/"+mediaTestAccountSID+"/1f2e3d4c5b6a?X-Amz-Signature=secret", http.StatusTemporaryRedirect)
	})

	got, err := newTestMediaFetcher(api.host()).Fetch(context.Background(), api.URL+mediaTestPath)
	require.NoError(t, err)
	assert.Equal(t, mediaTestPNG, got.Data)
	assert.Equal(t, "image/png", got.ContentType)

	apiReqs := api.received()
	require.Len(t, apiReqs, 1)
	user, pass, ok := apiReqs[0].BasicAuth()
	require.True(t, ok, "the allowed host gets basic auth")
	assert.Equal(t, mediaTestAccountSID, user)
	assert.Equal(t, mediaTestAuthToken, pass)

	cdnReqs := cdn.received()
	require.Len(t, cdnReqs, 1)
	assert.Empty(t, cdnReqs[0].Header.Get("Authorization"), "the CDN must not get the credentials")
	assert.Empty(t, cdnReqs[0].Header.Get("Referer"), "the CDN must not learn the media URL")

	t.Run("both hosts allowed", func(t *testing.T) {
		// A redirect within the allowlist keeps the credentials; this CDN refuses them.
		_, err := newTestMediaFetcher(api.host(), cdn.host()).Fetch(context.Background(), api.URL+mediaTestPath)
		requireMediaError(t, err, sms.ErrMediaUnavailable)
		assert.Contains(t, err.Error(), "400")
		assert.NotContains(t, err.Error(), "X-Amz-Signature")
	})
}

func TestMediaFetcherRedirectLimits(t *testing.T) {
	t.Run("too many redirects", func(t *testing.T) {
		var loop *countingServer
		loop = newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, loop.URL+mediaTestPath+"?hop="+strconv.Itoa(len(loop.received())), http.StatusFound)
		})
		_, err := newTestMediaFetcher(loop.host()).Fetch(context.Background(), loop.URL+mediaTestPath)
		requireMediaError(t, err, sms.ErrMediaRedirect)
		assert.Len(t, loop.received(), 6, "the first request and 5 redirects")
	})
	t.Run("five redirects are followed", func(t *testing.T) {
		var chain *countingServer
		chain = newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
			if n := len(chain.received()); n <= 5 {
				http.Redirect(w, r, chain.URL+mediaTestPath+"?hop="+strconv.Itoa(n), http.StatusFound)
				return
			}
			w.Header().Set("Content-Type", "application/pdf")
			_, _ = w.Write(mediaTestPDF)
		})
		got, err := newTestMediaFetcher(chain.host()).Fetch(context.Background(), chain.URL+mediaTestPath)
		require.NoError(t, err)
		assert.Equal(t, mediaTestPDF, got.Data)
		assert.Len(t, chain.received(), 6)
	})
	t.Run("downgrade to plain http", func(t *testing.T) {
		// 198.51.100.7 is TEST-NET-2: the redirect must be refused before dialling it.
		api := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://198.51.100.7/media/1f2e3d4c5b6a", http.StatusTemporaryRedirect)
		})
		start := time.Now()
		_, err := newTestMediaFetcher(api.host()).Fetch(context.Background(), api.URL+mediaTestPath)
		requireMediaError(t, err, sms.ErrMediaRedirect)
		assert.Less(t, time.Since(start), 2*time.Second)
	})
}

func TestMediaFetcherSizeLimit(t *testing.T) {
	const maxBytes = 64 << 10
	tests := []struct {
		name    string
		size    int
		chunked bool
		wantErr bool
	}{
		{"exactly the limit", maxBytes, false, false},
		{"exactly the limit, chunked", maxBytes, true, false},
		{"one byte over", maxBytes + 1, false, true},
		{"one byte over, chunked", maxBytes + 1, true, true},
		{"far over, chunked", 4 * maxBytes, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := append(append([]byte(nil), mediaTestJPEG[:11]...), bytes.Repeat([]byte{0x7F}, tt.size-11)...)
			srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "image/jpeg")
				if tt.chunked {
					// Flushing first sends no Content-Length: only reading can tell the size.
					w.WriteHeader(http.StatusOK)
					w.(http.Flusher).Flush()
				} else {
					w.Header().Set("Content-Length", strconv.Itoa(len(data)))
				}
				_, _ = w.Write(data)
			})
			got, err := newTestMediaFetcher(srv.host()).Fetch(context.Background(), srv.URL+mediaTestPath)
			if tt.wantErr {
				requireMediaError(t, err, sms.ErrMediaTooLarge)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, data, got.Data)
		})
	}
}

func TestMediaFetcherHTTPErrors(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusForbidden, http.StatusInternalServerError, http.StatusNotModified} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				if status != http.StatusNotModified {
					_, _ = w.Write([]byte(`{"code": 20404, "message": "The requested resource was not found", "status": 404}`))
				}
			})
			got, err := newTestMediaFetcher(srv.host()).Fetch(context.Background(), srv.URL+mediaTestPath)
			requireMediaError(t, err, sms.ErrMediaUnavailable)
			assert.Contains(t, err.Error(), strconv.Itoa(status))
			assert.Nil(t, got)
		})
	}
}

func TestMediaFetcherContentType(t *testing.T) {
	tests := []struct {
		name     string
		header   []string // nil: no Content-Type header at all
		data     []byte
		wantType string
		wantName string
	}{
		{"as given", []string{"image/gif"}, []byte("GIF89a\x01\x00\x01\x00"), "image/gif", "image.gif"},
		{"parameters dropped", []string{"image/jpeg; name=\"IMG_0412.jpg\""}, mediaTestJPEG, "image/jpeg", "image.jpg"},
		{"upper case", []string{"IMAGE/PNG"}, mediaTestPNG, "image/png", "image.png"},
		{"missing, sniffed", nil, mediaTestPNG, "image/png", "image.png"},
		{"octet-stream, sniffed", []string{"application/octet-stream"}, mediaTestPDF, "application/pdf", "file.pdf"},
		{"malformed, sniffed", []string{"image/"}, mediaTestJPEG, "image/jpeg", "image.jpg"},
		{"octet-stream, unknown bytes", []string{"application/octet-stream"}, []byte{0x00, 0x01, 0x02, 0x03}, "application/octet-stream", "file.bin"},
		{"missing, text", nil, []byte("Fever 38.5 since Monday"), "text/plain", "file.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Content-Type"] = tt.header
				_, _ = w.Write(tt.data)
			})
			got, err := newTestMediaFetcher(srv.host()).Fetch(context.Background(), srv.URL+mediaTestPath)
			require.NoError(t, err)
			assert.Equal(t, tt.data, got.Data)
			assert.Equal(t, tt.wantType, got.ContentType)
			assert.Equal(t, tt.wantName, got.FileName)
		})
	}
}

func TestMediaFetcherTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)

	t.Run("timeout", func(t *testing.T) {
		fetcher := sms.NewMediaFetcher(sms.MediaFetcherOptions{AccountSID: mediaTestAccountSID, AuthToken: mediaTestAuthToken,
			AllowedHosts: []string{srv.host()}, Timeout: 100 * time.Millisecond})
		_, err := fetcher.Fetch(context.Background(), srv.URL+mediaTestPath)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "/Media/")
		assert.NotContains(t, err.Error(), mediaTestAuthToken)
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := newTestMediaFetcher(srv.host()).Fetch(ctx, srv.URL+mediaTestPath)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotContains(t, err.Error(), "/Media/")
	})
}

func TestMediaFileName(t *testing.T) {
	tests := []struct {
		contentType string
		want        string
	}{
		{"image/jpeg", "image.jpg"},
		{"image/png", "image.png"},
		{"image/gif", "image.gif"},
		{"image/heic", "image.heic"},
		{"video/mp4", "video.mp4"},
		{"video/3gpp", "video.3gp"},
		{"audio/amr", "audio.amr"},
		{"audio/mpeg", "audio.mp3"},
		{"application/pdf", "file.pdf"},
		{"text/vcard", "contact.vcf"},
		{"text/x-vcard; charset=utf-8", "contact.vcf"},
		{"text/calendar", "file.ics"},
		{"application/x-carebridge-unknown", "file"},
		{"image/x-carebridge-unknown", "image"},
		{"", "file"},
		{"not a type;;", "file"},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			assert.Equal(t, tt.want, sms.MediaFileName(tt.contentType))
		})
	}
}
