package sms_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/sms"
)

// e164Pattern is what Twilio accepts as a phone number: "+", a country code that does
// not start with 0, and at most 15 digits in all.
var e164Pattern = regexp.MustCompile(`^\+[1-9]\d{6,14}$`)

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		region string
		want   string
	}{
		{"US national with parentheses", "(555) 123-4567", "US", "+15551234567"},
		{"US national with dashes", "555-123-4567", "US", "+15551234567"},
		{"US national with dots", "555.123.4567", "US", "+15551234567"},
		{"US digits only", "5551234567", "US", "+15551234567"},
		{"US with trunk prefix 1", "1 (555) 123-4567", "US", "+15551234567"},
		{"US international with spaces", "+1 555 123 4567", "US", "+15551234567"},
		{"US E.164 as Twilio sends it", "+15551234567", "US", "+15551234567"},
		{"clinic number", "+1 (555) 000-1111", "US", "+15550001111"},
		{"surrounding whitespace", "  +15551234567\t\n", "US", "+15551234567"},
		{"40 characters", "+1" + strings.Repeat(" ", 28) + "5551234567", "US", "+15551234567"},
		{"E.164 needs no region", "+15551234567", "", "+15551234567"},
		{"tel URI", "tel:+1-555-123-4567", "US", "+15551234567"},
		{"extension is dropped", "+1 555 123 4567 ext. 89", "US", "+15551234567"},
		{"US dialled from GB with 00", "001 555 123 4567", "GB", "+15551234567"},
		{"GB dialled from US with 011", "011 44 20 7946 0958", "US", "+442079460958"},
		{"GB national in GB", "020 7946 0958", "GB", "+442079460958"},
		{"GB mobile national in GB", "07700 900123", "GB", "+447700900123"},
		{"GB international in a US clinic", "+44 20 7946 0958", "US", "+442079460958"},
		{"DE national in DE", "030 123456", "DE", "+4930123456"},
		{"vanity number with letters", "1-800-FLOWERS", "US", "+18003569377"},
		{"Arabic-Indic digits", "\u0665\u0665\u0665\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "US", "+15551234567"},
		{"lower-case region", "(555) 123-4567", "us", "+15551234567"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sms.NormalizePhone(tt.raw, tt.region)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Regexp(t, e164Pattern, got)
		})
	}
}

func TestNormalizePhoneRejects(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		region string
	}{
		{"empty", "", "US"},
		{"only whitespace", " \t ", "US"},
		{"letters", "call me", "US"},
		{"letters that spell too few digits", "abc", "US"},
		{"too short", "555", "US"},
		{"short code", "12345", "US"},
		{"six-digit short code", "123456", "US"},
		{"emergency number", "911", "US"},
		{"too long for E.164", "+1555123456789012", "US"},
		{"41 characters", "+1" + strings.Repeat(" ", 29) + "5551234567", "US"},
		{"41 digits", strings.Repeat("5", 41), "US"},
		{"national number without a region", "5551234567", ""},
		{"national number with an unknown region", "5551234567", "XX"},
		{"unassigned country code", "+999 1234567", "US"},
		{"country code 0", "+0 5551234567", "US"},
		{"US local-only 7 digits", "555 1234", "US"},
		{"E.164 form that reads as another number", "000000000000", "AX"},
		{"GB London number without area code", "7946 0958", "GB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sms.NormalizePhone(tt.raw, tt.region)
			require.ErrorIs(t, err, sms.ErrInvalidPhone)
			assert.Empty(t, got)
		})
	}
}

func TestNormalizePhoneErrorTruncatesLongInput(t *testing.T) {
	raw := strings.Repeat("5", 1000)
	_, err := sms.NormalizePhone(raw, "US")
	require.ErrorIs(t, err, sms.ErrInvalidPhone)
	assert.Less(t, len(err.Error()), 100, "a long input must not be copied into the error")
}

func TestFormatPhone(t *testing.T) {
	tests := []struct {
		name   string
		e164   string
		region string
		want   string
	}{
		{"US number in a US clinic", "+12025550123", "US", "(202) 555-0123"},
		{"US number in a GB clinic", "+12025550123", "GB", "+1 202-555-0123"},
		{"GB landline in a GB clinic", "+442079460958", "GB", "020 7946 0958"},
		{"GB landline in a US clinic", "+442079460958", "US", "+44 20 7946 0958"},
		{"GB mobile in a GB clinic", "+447400123456", "GB", "07400 123456"},
		{"DE number in a US clinic", "+4930123456", "US", "+49 30 123456"},
		{"CA number in a CA clinic", "+14165550123", "CA", "(416) 555-0123"},
		// National format follows the country code, not the region (NANP, +44 dependencies).
		{"CA number in a US clinic", "+14165550123", "US", "(416) 555-0123"},
		{"Guernsey mobile (+44) in a GB clinic", "+447911123456", "GB", "07911 123456"},
		{"fictional 555 number in a US clinic", "+15551234567", "US", "(555) 123-4567"},
		{"lower-case region", "+15551234567", "us", "(555) 123-4567"},
		{"fictional 555 number without a region", "+15551234567", "", "+1 555-123-4567"},
		{"Ofcom drama mobile in a GB clinic", "+447700900123", "GB", "07700 900123"},
		{"garbage is passed through", "garbage", "US", "garbage"},
		{"empty is passed through", "", "US", ""},
		{"national number without a region is passed through", "5551234567", "", "5551234567"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, sms.FormatPhone(tt.e164, tt.region))
		})
	}
}

func FuzzNormalizePhone(f *testing.F) {
	seeds := []struct{ raw, region string }{
		{"(555) 123-4567", "US"},
		{"+1 555 123 4567", "US"},
		{"+15551234567", ""},
		{"020 7946 0958", "GB"},
		{"+44 20 7946 0958", "US"},
		{"011 44 20 7946 0958", "US"},
		{"1-800-FLOWERS", "US"},
		{"tel:+1-555-123-4567;ext=12", "US"},
		{"12345", "US"},
		{"555 1234", "US"},
		{"+999 1234567", "DE"},
		{"", "US"},
		{"\u0665\u0665\u0665\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "XX"},
	}
	for _, s := range seeds {
		f.Add(s.raw, s.region)
	}
	f.Fuzz(func(t *testing.T, raw, region string) {
		got, err := sms.NormalizePhone(raw, region)
		if err != nil {
			if !assert.ErrorIs(t, err, sms.ErrInvalidPhone) {
				return
			}
			assert.Empty(t, got)
			return
		}
		require.Regexp(t, e164Pattern, got)
		again, err := sms.NormalizePhone(got, region)
		require.NoError(t, err, "normalizing %q again", got)
		require.Equal(t, got, again, "NormalizePhone is not idempotent")
		// FormatPhone must cope with whatever NormalizePhone produced.
		assert.NotEmpty(t, sms.FormatPhone(got, region))
	})
}
