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
	num, err := phonenumbers.Parse(raw, strings.ToUpper(defaultRegion))
	// IS_POSSIBLE_LOCAL_ONLY numbers (a US number without area code) reach nobody in E.164.
	if err != nil || phonenumbers.IsPossibleNumberWithReason(num) != phonenumbers.IS_POSSIBLE {
		return "", fmt.Errorf("%w: %q", ErrInvalidPhone, raw)
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// A number whose E.164 form reads back as another ("000000000000" in AX is
	// +35800000000000, which reads as +3580000000000) would make one patient two.
	if again, err := phonenumbers.Parse(e164, ""); err != nil || phonenumbers.Format(again, phonenumbers.E164) != e164 {
		return "", fmt.Errorf("%w: %q", ErrInvalidPhone, raw)
	}
	return e164, nil
}

// FormatPhone renders an E.164 number for people: national format when it shares the
// clinic region's country code ("(555) 123-4567", also for Canada in a US clinic),
// international otherwise ("+44 20 7946 0958").
func FormatPhone(e164, defaultRegion string) string {
	region := strings.ToUpper(defaultRegion)
	num, err := phonenumbers.Parse(e164, region)
	if err != nil {
		return e164
	}
	if region != "" && int(num.GetCountryCode()) == phonenumbers.GetCountryCodeForRegion(region) {
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
