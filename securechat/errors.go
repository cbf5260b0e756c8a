package securechat

import "errors"

// Named errors of secure mode; the pages turn each into plain words for the patient.
var (
	ErrLinkUnknown    = errors.New("this link is not valid")
	ErrLinkExpired    = errors.New("this link has expired")
	ErrLinkRevoked    = errors.New("this link was withdrawn by the clinic")
	ErrLinkLocked     = errors.New("too many wrong codes: this link is locked")
	ErrRateLimited    = errors.New("too many codes were sent; wait before asking for another")
	ErrNoCode         = errors.New("no code was sent yet")
	ErrCodeExpired    = errors.New("the code has expired; ask for a new one")
	ErrWrongCode      = errors.New("the code or date of birth is not right")
	ErrSessionEnded   = errors.New("the session has ended")
	ErrInvalidDOB     = errors.New("not a date of birth in the form YYYY-MM-DD")
	ErrNotFound       = errors.New("not found")
	ErrUploadTooLarge = errors.New("the file is too large")
	ErrUploadType     = errors.New("only photos (JPEG, PNG, HEIC, WebP) and PDF files can be sent")
	ErrEmptyMessage   = errors.New("the message is empty")
	ErrMessageTooLong = errors.New("the message is too long")
	ErrNotSecure      = errors.New("this conversation is not in secure mode")
	ErrOptedOut       = errors.New("the patient opted out of texts (STOP)")
)
