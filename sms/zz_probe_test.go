package sms

import (
	"fmt"
	"testing"
	"github.com/nyaruka/phonenumbers"
)

func TestProbe(t *testing.T) {
	for _, s := range []string{"+15551234567", "+12025550123", "+12125551234", "+14165550123", "+442079460958", "+15550001111", "+11234567", "+15551234"} {
		n, _ := phonenumbers.Parse(s, "US")
		fmt.Printf("%s region=%q valid=%v possible=%v reason=%v F_US=%q F_GB=%q F_CA=%q F_empty=%q\n", s, phonenumbers.GetRegionCodeForNumber(n), phonenumbers.IsValidNumber(n), phonenumbers.IsPossibleNumber(n), phonenumbers.IsPossibleNumberWithReason(n), FormatPhone(s, "US"), FormatPhone(s, "GB"), FormatPhone(s, "CA"), FormatPhone(s, ""))
	}
	for _, s := range []string{"7946 0958", "020 7946 0958"} {
		out, err := NormalizePhone(s, "GB")
		fmt.Println(s, out, err)
	}
	fmt.Println(FormatPhone("+447700900123", "GB"), FormatPhone("+4930123456", "DE"), FormatPhone("+4930123456", "US"))
}
