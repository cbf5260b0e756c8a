package sms

import (
	"fmt"
	"strings"
	"unicode"
)

// Keyword is a carrier compliance keyword a patient texted as the whole message.
type Keyword int

// The keywords the bridge acts on. They follow Twilio's default opt-out, opt-in and help
// keywords, so the bridge agrees with what Twilio itself does with the same text.
const (
	// KeywordNone means the text is an ordinary message.
	KeywordNone Keyword = iota
	// KeywordOptOut means the patient asked to receive no more texts (STOP and its synonyms).
	KeywordOptOut
	// KeywordOptIn means the patient asked to receive texts again (START, UNSTOP, YES).
	KeywordOptIn
	// KeywordHelp means the patient asked who is texting them and how to stop it (HELP, INFO).
	KeywordHelp
)

// keywords maps the upper-case keyword to its meaning. "OPT OUT" is matched apart,
// because its inner separator varies.
var keywords = map[string]Keyword{
	"STOP":        KeywordOptOut,
	"STOPALL":     KeywordOptOut,
	"UNSUBSCRIBE": KeywordOptOut,
	"CANCEL":      KeywordOptOut,
	"END":         KeywordOptOut,
	"QUIT":        KeywordOptOut,
	"REVOKE":      KeywordOptOut,
	"OPTOUT":      KeywordOptOut,
	"START":       KeywordOptIn,
	"UNSTOP":      KeywordOptIn,
	"YES":         KeywordOptIn,
	"HELP":        KeywordHelp,
	"INFO":        KeywordHelp,
}

// ParseKeyword says which keyword body is, if the whole message is one. Case, and
// whitespace, punctuation and symbols (emoji included) around the word are ignored, so
// "  Stop!! " and "stop." are opt-outs while "stop texting me" and "Please stop" are
// ordinary messages. "OPT OUT" may be written with any run of whitespace or a hyphen
// between the words ("opt-out").
//
// Only ASCII letters count: look-alikes such as fullwidth "ＳＴＯＰ" or the long s of
// "ſtop" are ordinary messages, so the bridge does not act on a keyword that the
// carrier and Twilio's own keyword handling would not recognise either.
func ParseKeyword(body string) Keyword {
	core := strings.TrimFunc(body, isKeywordPadding)
	if first, rest, ok := cutOptOut(core); ok {
		if asciiLetters(first) && asciiLetters(rest) && strings.ToUpper(first) == "OPT" && strings.ToUpper(rest) == "OUT" {
			return KeywordOptOut
		}
		return KeywordNone
	}
	if !asciiLetters(core) {
		return KeywordNone
	}
	return keywords[strings.ToUpper(core)]
}

// asciiLetters reports whether s is non-empty and only A-Z and a-z. It is checked before
// upper-casing, as strings.ToUpper turns some non-ASCII letters into ASCII ones.
func asciiLetters(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// isKeywordPadding reports whether r may surround a keyword. Invalid UTF-8 decodes to
// U+FFFD, a symbol, so it is padding too.
func isKeywordPadding(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r)
}

// cutOptOut splits "opt out", "opt   out", "opt-out" or "opt - out" into the words
// before and after the first run of whitespace and hyphens. ok is false when core has
// no such run, or when the run holds more than one hyphen.
func cutOptOut(core string) (first, rest string, ok bool) {
	start := strings.IndexFunc(core, func(r rune) bool { return unicode.IsSpace(r) || r == '-' })
	if start < 0 {
		return "", "", false
	}
	end := len(core)
	hyphens := 0
	for i, r := range core[start:] {
		if r == '-' {
			hyphens++
		} else if !unicode.IsSpace(r) {
			end = start + i
			break
		}
	}
	return core[:start], core[end:], hyphens <= 1
}

// String names the keyword for logs and metrics ("opt-out").
func (k Keyword) String() string {
	switch k {
	case KeywordNone:
		return "none"
	case KeywordOptOut:
		return "opt-out"
	case KeywordOptIn:
		return "opt-in"
	case KeywordHelp:
		return "help"
	default:
		return fmt.Sprintf("Keyword(%d)", int(k))
	}
}
