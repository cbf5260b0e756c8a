package sms_test

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/carebridge/carebridge/sms"
)

func TestParseKeyword(t *testing.T) {
	tests := []struct {
		body string
		want sms.Keyword
	}{
		// Opt-out, every keyword Twilio honours, in any case and with padding.
		{"STOP", sms.KeywordOptOut},
		{"stop", sms.KeywordOptOut},
		{"Stop", sms.KeywordOptOut},
		{"  Stop!! ", sms.KeywordOptOut},
		{"stop.", sms.KeywordOptOut},
		{"\tSTOP\r\n", sms.KeywordOptOut},
		{"¡STOP!", sms.KeywordOptOut},
		{"\"stop\"", sms.KeywordOptOut},
		{"STOP 🛑", sms.KeywordOptOut},
		{"\u00a0stop\u3000", sms.KeywordOptOut},
		{"StopAll", sms.KeywordOptOut},
		{"unsubscribe", sms.KeywordOptOut},
		{"Cancel", sms.KeywordOptOut},
		{"END", sms.KeywordOptOut},
		{"quit", sms.KeywordOptOut},
		{"Revoke", sms.KeywordOptOut},
		{"OPTOUT", sms.KeywordOptOut},
		{"opt out", sms.KeywordOptOut},
		{"Opt Out.", sms.KeywordOptOut},
		{"OPT    OUT", sms.KeywordOptOut},
		{"opt\t\nout", sms.KeywordOptOut},
		{"opt-out", sms.KeywordOptOut},
		{"Opt - Out!", sms.KeywordOptOut},

		// Opt-in.
		{"START", sms.KeywordOptIn},
		{"start ", sms.KeywordOptIn},
		{"Unstop", sms.KeywordOptIn},
		{"yes", sms.KeywordOptIn},
		{"Yes!", sms.KeywordOptIn},

		// Help.
		{"HELP", sms.KeywordHelp},
		{"help?", sms.KeywordHelp},
		{"Info", sms.KeywordHelp},
		{"...info...", sms.KeywordHelp},

		// Ordinary messages: the keyword is not the whole message.
		{"stop texting me", sms.KeywordNone},
		{"Please stop", sms.KeywordNone},
		{"Yes, 3pm works for me", sms.KeywordNone},
		{"I need help with my prescription", sms.KeywordNone},
		{"Can I cancel my appointment on Friday?", sms.KeywordNone},
		{"stop stop", sms.KeywordNone},
		{"stops", sms.KeywordNone},
		{"s.t.o.p", sms.KeywordNone},
		{"st op", sms.KeywordNone},
		{"opt", sms.KeywordNone},
		{"out", sms.KeywordNone},
		{"opt in", sms.KeywordNone},
		{"opt--out", sms.KeywordNone},
		{"opt out now", sms.KeywordNone},
		{"optout2", sms.KeywordNone},
		{"STOP1", sms.KeywordNone},
		{"", sms.KeywordNone},
		{"   ", sms.KeywordNone},
		{"!!!", sms.KeywordNone},

		// Look-alikes Twilio does not honour.
		{"ＳＴＯＰ", sms.KeywordNone},       // fullwidth
		{"ſtop", sms.KeywordNone},       // long s, which strings.ToUpper makes "S"
		{"ınfo", sms.KeywordNone},       // dotless i, which strings.ToUpper makes "I"
		{"ѕтор", sms.KeywordNone},       // Cyrillic
		{"🛑", sms.KeywordNone},          // emoji only
		{"👍👍", sms.KeywordNone},         // emoji only
		{"st\u200bop", sms.KeywordNone}, // zero-width space inside
		{"\xffstop\xfe", sms.KeywordOptOut},
		{"st\xffop", sms.KeywordNone},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			assert.Equal(t, tt.want, sms.ParseKeyword(tt.body))
		})
	}
}

func TestKeywordString(t *testing.T) {
	tests := []struct {
		keyword sms.Keyword
		want    string
	}{
		{sms.KeywordNone, "none"},
		{sms.KeywordOptOut, "opt-out"},
		{sms.KeywordOptIn, "opt-in"},
		{sms.KeywordHelp, "help"},
		{sms.Keyword(42), "Keyword(42)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.keyword.String())
		})
	}
}

func FuzzParseKeyword(f *testing.F) {
	for _, seed := range []string{
		"STOP", "  Stop!! ", "opt-out", "opt   out", "Please stop", "ＳＴＯＰ", "🛑",
		"ſtop", "yes", "INFO", "", "\xff", "opt\u00a0out", "UNSUBSCRIBE.",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got := sms.ParseKeyword(body)
		assert.Equal(t, got, sms.ParseKeyword("  "+body+"!"), "padding changed the result")
		if got != sms.KeywordNone {
			assert.True(t, utf8.RuneCountInString(body) >= 3, "a keyword has at least 3 letters")
		}
	})
}
