package logmask

import (
	"bytes"
	"regexp"
)

// The regular expressions logmask ran over every log line before the scanner (up to
// commit a100800), kept as the reference the fuzz test and the benchmark compare with.

type refRule struct {
	re *regexp.Regexp
	// keep lists the submatches written as they are; the others become '*' per byte.
	keep []int
}

var refRules = []refRule{
	{regexp.MustCompile(`(\+|%2[Bb]|sms_)(\d{5,11})(\d{4})(\D|$)`), []int{1, 3, 4}},
	{regexp.MustCompile(`(["=/!.])(\d{6,11})(\d{4})(["/\s.:]|$)`), []int{1, 3, 4}},
	{regexp.MustCompile(`(\()(\d{3})(\) ?)(\d{3})(-)(\d{4})(\D|$)`), []int{1, 3, 5, 6, 7}},
	{regexp.MustCompile(`(^|\D)(\d{3})([-.])(\d{3})([-.])(\d{4})(\D|$)`), []int{1, 3, 5, 6, 7}},
}

const refJSONString = `"(?:[^"\\]|\\.)*"`

var refRedactions = []struct {
	re   *regexp.Regexp
	with []byte
}{
	{regexp.MustCompile(`"displayname":` + refJSONString), []byte(`"displayname":"***"`)},
	{regexp.MustCompile(`"req_body":\{"name":` + refJSONString), []byte(`"req_body":{"name":"***"`)},
	{regexp.MustCompile(`"req_body":\{"topic":` + refJSONString), []byte(`"req_body":{"topic":"***"`)},
}

// regexMask is the old Mask.
func regexMask(line []byte) []byte {
	for _, r := range refRedactions {
		line = r.re.ReplaceAllLiteral(line, r.with)
	}
	return regexMaskNumbers(line)
}

// regexMaskNumbers is the old Mask's phone-number part alone.
func regexMaskNumbers(line []byte) []byte {
	for _, r := range refRules {
		for range 4 {
			masked := r.re.ReplaceAllFunc(line, func(m []byte) []byte { return r.mask(m) })
			if bytes.Equal(masked, line) {
				break
			}
			line = masked
		}
	}
	return line
}

func (r refRule) mask(m []byte) []byte {
	idx := r.re.FindSubmatchIndex(m)
	out := make([]byte, 0, len(m))
	for g := 1; g*2 < len(idx); g++ {
		part := m[idx[2*g]:idx[2*g+1]]
		keep := false
		for _, k := range r.keep {
			keep = keep || k == g
		}
		if keep {
			out = append(out, part...)
		} else {
			out = append(out, bytes.Repeat([]byte{'*'}, len(part))...)
		}
	}
	return out
}
