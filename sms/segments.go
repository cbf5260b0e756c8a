package sms

import "unicode/utf8"

// Encoding is the character encoding a text goes out in over SMS.
type Encoding string

// The two encodings of GSM 03.38 / 3GPP TS 23.038 that carriers use for texts.
const (
	// EncodingGSM7 packs each character of the GSM default alphabet into 7 bits.
	EncodingGSM7 Encoding = "GSM-7"
	// EncodingUCS2 sends UTF-16 code units; one character outside the GSM alphabet
	// switches the whole text to it.
	EncodingUCS2 Encoding = "UCS-2"
)

// MaxBodyChars is the longest body Twilio accepts in one message, in characters (error
// 21617); Twilio splits it into segments.
const MaxBodyChars = 1600

// Segment sizes: a text that fits in one SMS may use the whole 140 octets; a longer one
// is split and each part gives 6 octets to the concatenation header (UDH).
const (
	gsm7SingleSeptets = 160
	gsm7PartSeptets   = 153
	ucs2SingleUnits   = 70
	ucs2PartUnits     = 67
)

// gsm7Basic is the GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1), one septet each,
// in table order. 0x1B is the escape to the extension table and has no character.
// The table has é è ù ì ò à ñ ü but not á í ó ú ç: those force UCS-2.
var gsm7Basic = []rune("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ" +
	" !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" +
	"¿abcdefghijklmnopqrstuvwxyzäöñüà")

// gsm7Extension is the default extension table (3GPP TS 23.038 §6.2.1.1): each of
// these costs the escape septet plus its own.
const gsm7Extension = "\f^{}\\[~]|€"

// gsm7Septets is how many septets each GSM-7 character costs.
var gsm7Septets = func() map[rune]int {
	m := make(map[rune]int, len(gsm7Basic)+len(gsm7Extension))
	for _, r := range gsm7Basic {
		m[r] = 1
	}
	for _, r := range gsm7Extension {
		m[r] = 2
	}
	return m
}()

// CountSegments says how many SMS segments body is billed and sent as, and in which
// encoding. Characters of the GSM default alphabet cost one septet and those of its
// extension table two; any other character makes the whole text UCS-2, counted in UTF-16
// code units (an emoji costs two). One segment holds 160 septets or 70 units; a longer
// text is split into segments of 153 septets or 67 units, and, as carriers do, a split
// never separates an extension character from its escape nor the halves of a surrogate
// pair, so such a character that would straddle a boundary starts the next segment.
// Twilio's Smart Encoding, which may replace characters such as "ó" by "o", is not
// assumed: the count is for the text as given. An empty body is 0 segments.
func CountSegments(body string) (segments int, enc Encoding) {
	if body == "" {
		return 0, EncodingGSM7
	}
	costs := make([]int, 0, len(body))
	enc = EncodingGSM7
	for _, r := range body {
		septets, ok := gsm7Septets[r]
		if !ok {
			enc = EncodingUCS2
			break
		}
		costs = append(costs, septets)
	}
	single, part := gsm7SingleSeptets, gsm7PartSeptets
	if enc == EncodingUCS2 {
		costs = costs[:0]
		for _, r := range body {
			// Invalid UTF-8 decodes to U+FFFD, which is sent as one unit.
			costs = append(costs, utf16Units(r))
		}
		single, part = ucs2SingleUnits, ucs2PartUnits
	}
	return packSegments(costs, single, part), enc
}

// utf16Units is how many UTF-16 code units r takes.
func utf16Units(r rune) int {
	if r > 0xFFFF && r <= utf8.MaxRune {
		return 2
	}
	return 1
}

// packSegments fills segments greedily with characters of the given costs, moving a
// character that does not fit whole to the next segment.
func packSegments(costs []int, single, part int) int {
	total := 0
	for _, c := range costs {
		total += c
	}
	if total <= single {
		return 1
	}
	segments, used := 1, 0
	for _, c := range costs {
		if used+c > part {
			segments++
			used = 0
		}
		used += c
	}
	return segments
}
