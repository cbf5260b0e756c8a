package sms

import "errors"

// Named errors of inbound media downloads (MediaFetcher).
var (
	// ErrMediaURLNotAllowed means a media URL is not one the bridge may send the account's
	// credentials to (host not allowed, or not HTTPS); no request was made.
	ErrMediaURLNotAllowed = errors.New("media URL is not on an allowed Twilio host")
	// ErrMediaRedirect means a media download redirected too often or to an insecure URL.
	ErrMediaRedirect = errors.New("media download redirected to a URL the bridge does not follow")
	// ErrMediaTooLarge means the media file is larger than MediaFetcherOptions.MaxBytes.
	ErrMediaTooLarge = errors.New("media file is larger than the bridge accepts")
	// ErrMediaUnavailable means the media host answered with a status other than 2xx.
	ErrMediaUnavailable = errors.New("Twilio did not return the media file")
)
