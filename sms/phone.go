package sms

import (
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// NormalizePhone parses a phone number as a person or Twilio wrote it ("(555) 123-4567",
// "+1 555 123 4567") and returns it in E.164 ("+15551234567"). Numbers without a country
// code are read in defaultRegion.
func NormalizePhone(raw, defaultRegion string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 40 {
		return "", fmt.Errorf("%w: %q", ErrInvalidPhone, truncate(raw, 40))
	}
	num, err := phonenumbers.Parse(raw, defaultRegion)
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return "", fmt.Errorf("%w: %q", ErrInvalidPhone, raw)
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// FormatPhone renders an E.164 number for people: national format in the clinic's
// region ("(555) 123-4567"), international elsewhere ("+44 20 7946 0958").
func FormatPhone(e164, defaultRegion string) string {
	num, err := phonenumbers.Parse(e164, defaultRegion)
	if err != nil {
		return e164
	}
	if phonenumbers.GetRegionCodeForNumber(num) == defaultRegion {
		return phonenumbers.Format(num, phonenumbers.NATIONAL)
	}
	return phonenumbers.Format(num, phonenumbers.INTERNATIONAL)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
