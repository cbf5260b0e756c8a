package sms_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"github.com/carebridge/carebridge/sms"
)

func TestCountSegments(t *testing.T) {
	const reminder = "Reminder: your appointment at Riverside Family Clinic is on Tue 14 May at 9:30. Reply C to confirm or call (555) 123-4567 to reschedule."
	tests := []struct {
		name     string
		body     string
		segments int
		enc      sms.Encoding
	}{
		{"empty", "", 0, sms.EncodingGSM7},
		{"one letter", "Y", 1, sms.EncodingGSM7},
		{"appointment reminder", reminder, 1, sms.EncodingGSM7},

		// GSM-7 boundaries: 160 in one segment, then 153 per segment.
		{"160 GSM-7", strings.Repeat("a", 160), 1, sms.EncodingGSM7},
		{"161 GSM-7", strings.Repeat("a", 161), 2, sms.EncodingGSM7},
		{"153*2 GSM-7", strings.Repeat("a", 153*2), 2, sms.EncodingGSM7},
		{"153*2+1 GSM-7", strings.Repeat("a", 153*2+1), 3, sms.EncodingGSM7},
		{"153*3 GSM-7", strings.Repeat("a", 153*3), 3, sms.EncodingGSM7},

		// Extension characters cost two septets.
		{"80 euro signs", strings.Repeat("€", 80), 1, sms.EncodingGSM7},
		{"81 euro signs", strings.Repeat("€", 81), 2, sms.EncodingGSM7},
		{"159 + euro", strings.Repeat("a", 159) + "€", 2, sms.EncodingGSM7},
		{"158 + euro", strings.Repeat("a", 158) + "€", 1, sms.EncodingGSM7},
		{"every extension character", "\f^{}\\[~]|€", 1, sms.EncodingGSM7},
		{"form feed and brackets fill 160", strings.Repeat("[", 80), 1, sms.EncodingGSM7},
		// 152 septets + € would straddle the 153 boundary: the € starts segment 2.
		// 152 + 2 + 152 = 306 septets would fit 2 segments only by splitting the €.
		{"euro at 153 boundary not split", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), 3, sms.EncodingGSM7},
		{"euro at 153 boundary, rest fits", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 151), 2, sms.EncodingGSM7},
		{"euro just before 153 boundary", strings.Repeat("a", 151) + "€" + strings.Repeat("a", 153), 2, sms.EncodingGSM7},
		{"euro just after 153 boundary", strings.Repeat("a", 153) + "€" + strings.Repeat("a", 151), 2, sms.EncodingGSM7},

		// UCS-2 boundaries: 70 in one segment, then 67 per segment.
		{"70 UCS-2", strings.Repeat("ó", 70), 1, sms.EncodingUCS2},
		{"71 UCS-2", strings.Repeat("ó", 71), 2, sms.EncodingUCS2},
		{"67*2 UCS-2", strings.Repeat("ó", 67*2), 2, sms.EncodingUCS2},
		{"67*2+1 UCS-2", strings.Repeat("ó", 67*2+1), 3, sms.EncodingUCS2},
		{"one non-GSM char switches all", strings.Repeat("a", 69) + "ç", 1, sms.EncodingUCS2},
		{"one non-GSM char in 71", strings.Repeat("a", 70) + "ç", 2, sms.EncodingUCS2},

		// Emoji are surrogate pairs: two UTF-16 units.
		{"35 emoji", strings.Repeat("😀", 35), 1, sms.EncodingUCS2},
		{"36 emoji", strings.Repeat("😀", 36), 2, sms.EncodingUCS2},
		{"thumbs up", "OK 👍", 1, sms.EncodingUCS2},
		// 66 units + emoji would straddle the 67 boundary: the emoji starts segment 2.
		// 66 + 2 + 66 = 134 units would fit 2 segments only by splitting the pair.
		{"emoji at 67 boundary not split", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 66), 3, sms.EncodingUCS2},
		{"emoji at 67 boundary, rest fits", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 65), 2, sms.EncodingUCS2},
		{"emoji just before 67 boundary", strings.Repeat("a", 65) + "😀" + strings.Repeat("a", 67), 2, sms.EncodingUCS2},
		{"emoji just after 67 boundary", strings.Repeat("a", 67) + "😀" + strings.Repeat("a", 65), 2, sms.EncodingUCS2},
		{"BMP symbol is one unit", strings.Repeat("✓", 70), 1, sms.EncodingUCS2},

		// Languages. GSM 03.38 has é è ù ì ò à ñ ü Ä Ö Ñ Ü ¿ ¡ but not á í ó ú ç.
		{"Spanish with á and ó", "¿Cómo está?", 1, sms.EncodingUCS2},
		{"Spanish with only GSM accents", "¿Qué tal? Mañana a las 9, señor Núñez", 1, sms.EncodingUCS2},
		{"Spanish GSM-7", "¿Qué tal? Mañana a las 9. ¡Gracias!", 1, sms.EncodingGSM7},
		{"German", "Grüße aus Köln, Ärztin Müller", 1, sms.EncodingGSM7},
		{"French without ç", "Votre rendez-vous est confirmé à 9h. Ça va?", 1, sms.EncodingGSM7},
		{"French with ç", "Reçu, merci", 1, sms.EncodingUCS2},
		{"Portuguese ã", "Não", 1, sms.EncodingUCS2},
		{"Greek capitals in GSM", "ΔΦΓΛΩΠΨΣΘΞ", 1, sms.EncodingGSM7},
		{"Greek small letters", "αβγ", 1, sms.EncodingUCS2},
		{"Chinese", "您的预约已确认", 1, sms.EncodingUCS2},
		{"curly quote", "Don’t forget your card", 1, sms.EncodingUCS2},
		{"dollar sign and currency", "Copay: $20, £15, ¥300, ¤", 1, sms.EncodingGSM7},
		{"newline and CR", "Line one\r\nLine two", 1, sms.EncodingGSM7},
		{"tab is not GSM", "a\tb", 1, sms.EncodingUCS2},
		{"backtick is not GSM", "`code`", 1, sms.EncodingUCS2},
		{"invalid UTF-8", "caf\xe9", 1, sms.EncodingUCS2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			segments, enc := sms.CountSegments(tt.body)
			assert.Equal(t, tt.enc, enc)
			assert.Equal(t, tt.segments, segments)
		})
	}
}

// TestCountSegmentsLongReminder is a realistic 3-part text with an extension character.
func TestCountSegmentsLongReminder(t *testing.T) {
	body := "Hello from Riverside Family Clinic. Your lab results are ready. Please log in to the patient portal " +
		"or call us at (555) 123-4567 between 8:00 and 17:00, Monday to Friday. Your balance is €25 [invoice 2024-118]. " +
		"If you have questions about your results, reply to this text and a nurse will answer today. Thank you!"
	// 313 characters, 316 septets: €, [ and ] cost two each.
	assert.Equal(t, 313, utf8.RuneCountInString(body))
	segments, enc := sms.CountSegments(body)
	assert.Equal(t, sms.EncodingGSM7, enc)
	assert.Equal(t, 3, segments)
}

func FuzzCountSegments(f *testing.F) {
	for _, seed := range []string{"", "STOP", "¿Cómo está?", strings.Repeat("€", 81), strings.Repeat("😀", 36), "\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		segments, enc := sms.CountSegments(body)
		if body == "" {
			assert.Zero(t, segments)
			return
		}
		assert.Contains(t, []sms.Encoding{sms.EncodingGSM7, sms.EncodingUCS2}, enc)
		runes := utf8.RuneCountInString(body)
		// Every segment holds at least 76 characters (153 septets of 2, 67 units of 2)
		// less one straddling character, and no segment more than 160.
		assert.GreaterOrEqual(t, segments, (runes+159)/160)
		assert.LessOrEqual(t, segments, runes/33+1)
		// Appending text never lowers the count.
		more, _ := sms.CountSegments(body + "x")
		assert.GreaterOrEqual(t, more, segments)
	})
}
