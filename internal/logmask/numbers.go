package logmask

// The phone-number mask is one pass over the line's runs of digits: each run, with the
// bytes around it, is one of the forms a number takes in bridgev2's and carebridge's log
// lines, or is left alone. It is the regular expressions it replaced (regex_ref_test.go),
// which took about 13% of the bridge's CPU in an inbound burst, without their passes:
//
//   - E.164 (+15551234567), URL-encoded (%2B15551234567), a ghost (sms_15551234567):
//     9 to 15 digits after "+", "%2B" or "sms_", then a non-digit or the end;
//   - an ID that is a bare number: a JSON string ("15551234567"), key=value (pretty
//     logs), a path segment, part of a local room ID (!15551234567.15550001111:x):
//     10 to 15 digits after one of `"=/!.`, then one of `"/.:`, white space or the end;
//   - national formats: (555) 123-4567, (555)123-4567, 555-123-4567, 555.123.4567.
//
// Each keeps the last four digits; the other digits become '*'.

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// maskNumbers masks the numbers in line. owned says that line is m.buf already (the
// names were redacted): it is then masked in place; otherwise line is copied into m.buf
// at the first digit masked, and returned as it is when there is none.
func (m *masker) maskNumbers(line []byte, owned bool) []byte {
	out := line
	n := len(line)
	for i := 0; i < n; i++ {
		if !isDigit(line[i]) {
			continue
		}
		// line[i] starts a run of digits: the byte before it, if any, is not a digit.
		j := i + 1
		for j < n && isDigit(line[j]) {
			j++
		}
		switch l := j - i; {
		case l >= 9 && l <= 15:
			if afterPlus(line, i) || (l >= 10 && i >= 1 && isIDStart(line[i-1]) && (j == n || isIDEnd(line[j]))) {
				out, owned = m.star(out, owned, i, j-4)
			}
		case l == 3:
			if k := nationalNumber(line, i, j); k > 0 {
				out, owned = m.star(out, owned, i, j)
				out, owned = m.star(out, owned, k, k+3)
				j = k + 8
			}
		}
		i = j // line[j] is not a digit
	}
	return out
}

// star writes '*' over out[from:to], copying line into m.buf first unless owned.
func (m *masker) star(out []byte, owned bool, from, to int) ([]byte, bool) {
	if !owned {
		m.buf = append(m.buf[:0], out...)
		out = m.buf
	}
	for k := from; k < to; k++ {
		out[k] = '*'
	}
	return out, true
}

// afterPlus says whether the run at i follows "+", "%2B" (or "%2b") or "sms_".
func afterPlus(line []byte, i int) bool {
	switch {
	case i >= 1 && line[i-1] == '+':
		return true
	case i >= 3 && line[i-3] == '%' && line[i-2] == '2' && line[i-1]|0x20 == 'b':
		return true
	case i >= 4 && line[i-4] == 's' && line[i-3] == 'm' && line[i-2] == 's' && line[i-1] == '_':
		return true
	}
	return false
}

// isIDStart and isIDEnd are the bytes around a number used as an ID.
func isIDStart(c byte) bool { return c == '"' || c == '=' || c == '/' || c == '!' || c == '.' }

func isIDEnd(c byte) bool {
	switch c {
	case '"', '/', '.', ':', ' ', '\t', '\n', '\f', '\r':
		return true
	}
	return false
}

// nationalNumber reads a national format whose first three digits are line[i:j]: it
// returns where the second group of three starts (the last four follow it and a
// separator), or 0 when line[i:] is not one.
func nationalNumber(line []byte, i, j int) int {
	n := len(line)
	if j >= n {
		return 0
	}
	k := j + 1
	parens := false
	switch c := line[j]; {
	case c == ')' && i >= 1 && line[i-1] == '(': // (555) 123-4567, (555)123-4567
		parens = true
		if k < n && line[k] == ' ' {
			k++
		}
	case c == '-' || c == '.': // 555-123-4567, 555.123.4567, 555-123.4567
	default:
		return 0
	}
	// Three digits, '-' (or '.' without parentheses), four digits, then a non-digit or
	// the end.
	if k+8 > n || !isDigit(line[k]) || !isDigit(line[k+1]) || !isDigit(line[k+2]) ||
		!(line[k+3] == '-' || line[k+3] == '.' && !parens) ||
		!isDigit(line[k+4]) || !isDigit(line[k+5]) || !isDigit(line[k+6]) || !isDigit(line[k+7]) ||
		(k+8 < n && isDigit(line[k+8])) {
		return 0
	}
	return k
}
