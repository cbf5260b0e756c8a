package outbox

import (
	"errors"
	"fmt"
)

// Refusals: the text was certainly not sent, and never will be as it is.
var (
	ErrOptedOut     = errors.New("the patient has opted out (STOP); nothing is texted to them until they text START")
	ErrTooLong      = errors.New("the text is longer than the clinic allows")
	ErrEmpty        = errors.New("the text is empty")
	ErrNotLinked    = errors.New("the clinic number is not linked")
	ErrNotAccepting = errors.New("the outbox is not running")
)

// Refusal is a text the outbox will not send, with the sentence staff see.
type Refusal struct {
	Reason error  // one of the Err values above
	Words  string // what staff read, e.g. "this text would be 12 SMS segments…"
}

func (r *Refusal) Error() string { return r.Words }
func (r *Refusal) Unwrap() error { return r.Reason }

func refuse(reason error, format string, args ...any) *Refusal {
	words := reason.Error()
	if format != "" {
		words = fmt.Sprintf(format, args...)
	}
	return &Refusal{Reason: reason, Words: words}
}
