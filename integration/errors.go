package integration

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an error the caller sees: an HTTP status, a stable code and a sentence.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field is the request field at fault, when there is one.
	Field string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Message }

func apiError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func fieldError(field, format string, args ...any) *Error {
	e := apiError(http.StatusUnprocessableEntity, "invalid_field", format, args...)
	e.Field = field
	return e
}

// Errors the backend returns for what the caller can act on.
var (
	ErrOptedOut       = apiError(http.StatusConflict, "opted_out", "the patient has opted out (STOP): nothing is texted until they text START; a secure message can still be stored but no alert is texted")
	ErrNumberNotReady = apiError(http.StatusConflict, "number_not_linked", "the clinic number is not linked to the bridge right now")
)

// asError turns any error into what the caller sees; internal errors say only that.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return apiError(http.StatusInternalServerError, "internal_error", "the bridge could not complete the request; try again (the same Idempotency-Key is safe)")
}
