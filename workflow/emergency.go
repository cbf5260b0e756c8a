package workflow

import (
	"strings"
	"sync"
	"time"
	"unicode"
)

// Emergency phrases: a patient's text containing one of network.emergency.phrases marks
// the conversation urgent and gets the emergency reply, at most once per
// EmergencyReplyInterval per conversation.

// EmergencyReplyInterval is how long a conversation's emergency reply is not repeated: a
// patient who writes "chest pain" three times gets one reply (every match still marks the
// conversation urgent).
const EmergencyReplyInterval = 10 * time.Minute

// MatchEmergency returns the first phrase that body contains as whole words ("stroke"
// matches "I think it's a stroke", not "heatstroke"), or "".
func MatchEmergency(phrases []string, body string) string {
	words := foldText(body)
	for _, phrase := range phrases {
		want := foldText(phrase)
		if len(want) == 0 {
			continue
		}
		for i := 0; i+len(want) <= len(words); i++ {
			match := true
			for j, w := range want {
				if words[i+j] != w {
					match = false
					break
				}
			}
			if match {
				return phrase
			}
		}
	}
	return ""
}

// foldText prepares text for phrase matching: lower case, accents and apostrophes
// (’ ' ` ´) dropped, and everything that is not a letter or digit a word break. So "Can’t
// breathe!!" matches "can't breathe" and "dolor de pécho" matches "dolor de pecho".
func foldText(s string) []string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch r {
		case '\'', '’', '‘', '`', '´', 'ʼ':
			continue
		}
		if folded, ok := accentFold[r]; ok {
			r = folded
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte(' ')
		}
	}
	return strings.Fields(b.String())
}

var accentFold = map[rune]rune{
	'á': 'a', 'à': 'a', 'â': 'a', 'ä': 'a', 'ã': 'a',
	'é': 'e', 'è': 'e', 'ê': 'e', 'ë': 'e',
	'í': 'i', 'ì': 'i', 'î': 'i', 'ï': 'i',
	'ó': 'o', 'ò': 'o', 'ô': 'o', 'ö': 'o', 'õ': 'o',
	'ú': 'u', 'ù': 'u', 'û': 'u', 'ü': 'u',
	'ñ': 'n', 'ç': 'c',
}

// EmergencyReplies holds when each conversation last got the emergency reply. It lives in
// memory (one bridge process holds the appservice): after a restart a repeated phrase may
// get the reply once more, which is harmless.
type EmergencyReplies struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// Claim takes the right to text conversation key's emergency reply at now; release undoes
// it (the text failed, so the next match tries again).
func (e *EmergencyReplies) Claim(key string, now time.Time) (claimed bool, release func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.last == nil {
		e.last = map[string]time.Time{}
	}
	for k, at := range e.last {
		if now.Sub(at) >= EmergencyReplyInterval || at.After(now.Add(EmergencyReplyInterval)) {
			delete(e.last, k)
		}
	}
	if _, recent := e.last[key]; recent {
		return false, nil
	}
	e.last[key] = now
	return true, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.last[key].Equal(now) {
			delete(e.last, key)
		}
	}
}
