package testenv

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Twilio error codes the fake answers with; see https://www.twilio.com/docs/api/errors.
const (
	twilioErrUnparsable          = 20001
	twilioErrAuthenticate        = 20003
	twilioErrMethodNotAllowed    = 20004
	twilioErrNotFound            = 20404
	twilioErrInvalidMethod       = 21403
	twilioErrInvalidURL          = 21402
	twilioErrInvalidTo           = 21211
	twilioErrSameToFrom          = 21266
	twilioErrBodyRequired        = 21602
	twilioErrFromRequired        = 21603
	twilioErrToRequired          = 21604
	twilioErrFromNotOwned        = 21606
	twilioErrInvalidCallback     = 21609
	twilioErrUnsubscribed        = 21610
	twilioErrBodyTooLong         = 21617
	twilioErrInvalidMediaURL     = 21620
	twilioErrTooManyMedia        = 21623
	twilioErrInvalidService      = 21701
	twilioErrUnknownDeliveryFail = 30008
)

// twilioError is the legacy (2010-04-01) error body, the shape twilio-go decodes into
// *client.TwilioRestError.
type twilioError struct {
	Code     int    `json:"code"`
	Detail   string `json:"detail,omitempty"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeTwilioError(w http.ResponseWriter, status, code int, message string) {
	body := twilioError{
		Code:     code,
		Message:  message,
		MoreInfo: "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
		Status:   status,
	}
	if code == twilioErrAuthenticate {
		body.Detail = "Your AccountSid or AuthToken was incorrect."
	}
	writeTwilioJSON(w, status, body)
}

func writeTwilioJSON(w http.ResponseWriter, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Twilio-Request-Id", newTwilioSID("RQ"))
	w.WriteHeader(status)
	_, _ = w.Write(data)
}
