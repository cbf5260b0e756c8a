package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults of MediaFetcherOptions.
const (
	// DefaultMediaHost is the only host that receives the account's credentials unless
	// AllowedHosts says otherwise. Twilio's MediaUrl values point there and redirect to
	// its CDN.
	DefaultMediaHost = "api.twilio.com"
	// DefaultMediaMaxBytes bounds one inbound attachment. Carriers cap MMS far lower
	// (around 1–5 MB), but Twilio also relays larger media on other channels, and 20 MiB
	// stays under the upload limit of common homeservers.
	DefaultMediaMaxBytes int64 = 20 << 20
	// DefaultMediaTimeout bounds one download, redirects and body included.
	DefaultMediaTimeout = 60 * time.Second
)

// maxMediaRedirects is how many redirects a download follows; Twilio uses one.
const maxMediaRedirects = 5

// MediaFetcherOptions says whose credentials download inbound media and from where.
type MediaFetcherOptions struct {
	// AccountSID and AuthToken are sent with HTTP basic auth, only to AllowedHosts.
	AccountSID, AuthToken string
	// AllowedHosts are the hosts ("host" or "host:port") that may receive the
	// credentials; media URLs on any other host are refused without a request.
	// Default: {"api.twilio.com"}. A "host" entry matches only the scheme's default port.
	AllowedHosts []string
	// MaxBytes bounds one file; 0 means DefaultMediaMaxBytes (20 MiB).
	MaxBytes int64
	// Timeout bounds one download; 0 means DefaultMediaTimeout (60 s).
	Timeout time.Duration
}

// MediaFetcher downloads the media of inbound MMS from Twilio. It is safe for
// concurrent use.
type MediaFetcher struct {
	accountSID, authToken string
	allowedHosts          []string
	maxBytes              int64
	client                *http.Client
}

// FetchedMedia is one downloaded attachment.
type FetchedMedia struct {
	Data []byte
	// ContentType is the media type without parameters, such as "image/jpeg".
	ContentType string
	// FileName is a name derived from the type, such as "image.jpg"; Twilio gives none.
	FileName string
}

// NewMediaFetcher builds a fetcher for one Twilio account.
func NewMediaFetcher(opts MediaFetcherOptions) *MediaFetcher {
	f := &MediaFetcher{
		accountSID: opts.AccountSID,
		authToken:  opts.AuthToken,
		maxBytes:   opts.MaxBytes,
	}
	for _, h := range opts.AllowedHosts {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			f.allowedHosts = append(f.allowedHosts, h)
		}
	}
	if len(f.allowedHosts) == 0 {
		f.allowedHosts = []string{DefaultMediaHost}
	}
	if f.maxBytes <= 0 {
		f.maxBytes = DefaultMediaMaxBytes
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultMediaTimeout
	}
	f.client = &http.Client{Timeout: timeout, CheckRedirect: f.checkRedirect}
	return f
}

// Fetch downloads the media at mediaURL, a MediaUrlN of an inbound webhook. It refuses,
// with ErrMediaURLNotAllowed and without any request, a URL whose host is not allowed or
// which is not HTTPS (plain HTTP only to an allowed loopback host, for tests): a forged
// webhook must not make the bridge send the account's credentials elsewhere. The
// credentials go only to allowed hosts; Twilio's redirect to its CDN is followed
// without them. Files over MaxBytes fail with ErrMediaTooLarge, non-2xx answers with
// ErrMediaUnavailable. Errors never contain the URL, whose CDN form is itself a secret.
func (f *MediaFetcher) Fetch(ctx context.Context, mediaURL string) (*FetchedMedia, error) {
	u, err := url.Parse(mediaURL)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: not an absolute URL", ErrMediaURLNotAllowed)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: the URL carries credentials", ErrMediaURLNotAllowed)
	}
	if !f.allowed(u) {
		return nil, fmt.Errorf("%w: host %q is not allowed", ErrMediaURLNotAllowed, truncate(u.Host, 64))
	}
	if !secureScheme(u) {
		return nil, fmt.Errorf("%w: %s to %q would send the credentials unencrypted", ErrMediaURLNotAllowed, u.Scheme, truncate(u.Host, 64))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to build media request: %w", err)
	}
	req.SetBasicAuth(f.accountSID, f.authToken)
	resp, err := f.client.Do(req)
	if err != nil {
		// *url.Error quotes the URL; drop it, the redirect's may be a presigned one.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, fmt.Errorf("failed to download media: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("%w: HTTP %d from %q", ErrMediaUnavailable, resp.StatusCode, resp.Request.URL.Host)
	}
	if resp.ContentLength > f.maxBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMediaTooLarge, resp.ContentLength, f.maxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read media: %w", err)
	}
	if int64(len(data)) > f.maxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrMediaTooLarge, f.maxBytes)
	}
	contentType := mediaContentType(resp.Header.Get("Content-Type"), data)
	return &FetchedMedia{Data: data, ContentType: contentType, FileName: MediaFileName(contentType)}, nil
}

// checkRedirect bounds redirects, refuses a downgrade to plain HTTP, and removes the
// credentials from any request to a host that is not allowed. net/http already drops
// Authorization when the host name changes, but not for another port of the same
// host nor for a subdomain; the allowlist is the rule here.
func (f *MediaFetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxMediaRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrMediaRedirect, maxMediaRedirects)
	}
	if !secureScheme(req.URL) {
		return fmt.Errorf("%w: %s to %q is not encrypted", ErrMediaRedirect, req.URL.Scheme, truncate(req.URL.Host, 64))
	}
	if req.URL.User != nil || !f.allowed(req.URL) {
		req.Header.Del("Authorization")
	}
	// The Referer would tell the CDN the account's media URL; it has no use for it.
	req.Header.Del("Referer")
	return nil
}

// allowed reports whether u's host is in the allowlist. An entry without a port matches
// the host on the scheme's default port only.
func (f *MediaFetcher) allowed(u *url.URL) bool {
	host := strings.ToLower(u.Host)
	if slices.Contains(f.allowedHosts, host) {
		return true
	}
	port := u.Port()
	defaultPort := port == "" || u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80"
	return defaultPort && slices.Contains(f.allowedHosts, strings.ToLower(u.Hostname()))
}

// secureScheme reports whether u may carry patient media and credentials: HTTPS, or
// plain HTTP to a loopback address (the fake Twilio in tests).
func secureScheme(u *url.URL) bool {
	switch u.Scheme {
	case "https":
		return true
	case "http":
		host := u.Hostname()
		if strings.EqualFold(host, "localhost") {
			return true
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
	return false
}

// preferredExtensions picks the usual extension where the system's MIME table has
// several (image/jpeg: .jfif .jpe .jpeg .jpg) or may lack the type.
var preferredExtensions = map[string]string{
	"image/jpeg":      ".jpg",
	"image/png":       ".png",
	"image/gif":       ".gif",
	"image/webp":      ".webp",
	"image/heic":      ".heic",
	"image/bmp":       ".bmp",
	"image/tiff":      ".tiff",
	"video/mp4":       ".mp4",
	"video/3gpp":      ".3gp",
	"video/quicktime": ".mov",
	"video/mpeg":      ".mpeg",
	"audio/mpeg":      ".mp3",
	"audio/mp4":       ".m4a",
	"audio/amr":       ".amr",
	"audio/ogg":       ".ogg",
	"audio/wav":       ".wav",
	"application/pdf": ".pdf",
	"text/vcard":      ".vcf",
	"text/x-vcard":    ".vcf",
	"text/calendar":   ".ics",
	"text/plain":      ".txt",
	"text/csv":        ".csv",

	"application/octet-stream": ".bin",
}

// mediaContentType is the response's media type without parameters; when the header is
// missing, malformed or the generic application/octet-stream, the bytes are sniffed.
func mediaContentType(header string, data []byte) string {
	if mediaType, _, err := mime.ParseMediaType(header); err == nil && mediaType != "application/octet-stream" {
		return mediaType
	}
	mediaType, _, err := mime.ParseMediaType(http.DetectContentType(data))
	if err != nil {
		return "application/octet-stream"
	}
	return mediaType
}

// MediaFileName names an attachment of the given media type for Matrix, such as
// "image.jpg", "video.mp4", "contact.vcf" or "file.pdf", since Twilio gives no file
// name. Unknown types get "file" with the system's first extension for the type, or
// none.
func MediaFileName(contentType string) string {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "file"
	}
	base := "file"
	switch top, sub, _ := strings.Cut(mediaType, "/"); {
	case top == "image", top == "video", top == "audio":
		base = top
	case sub == "vcard" || sub == "x-vcard":
		base = "contact"
	}
	ext, ok := preferredExtensions[mediaType]
	if !ok {
		if exts, err := mime.ExtensionsByType(mediaType); err == nil && len(exts) > 0 {
			ext = exts[0]
		}
	}
	return base + ext
}
