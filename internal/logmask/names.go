package logmask

import "bytes"

// Patient names reach the logs in the Matrix requests mautrix logs at debug level
// (req_body): createRoom's name, topic and initial_state (m.room.name, m.room.topic, the
// m.bridge channel), m.room.name and m.room.topic state, member events and profiles.
// A request body is walked as JSON and every string under a key "name", "topic",
// "displayname" or "m.topic" (an extensible topic), at any depth below it, is written
// "***". So is a "displayname" anywhere else in a line, and the ghost's expected and
// actual names bridgev2 logs when a ghost's profile drifted (ghost.go).

// A lookup is what redactNames looks for in a line. The line is searched for two anchors
// only, "req_body" and "name", each lookup holding one.
type lookup struct {
	key    []byte
	body   bool // a request body to walk; else a field whose string value is a name
	anchor int  // in anchors
	offset int  // of the anchor in key
}

var anchors = [...][]byte{[]byte("req_body"), []byte("name")}

var lookups = [...]lookup{
	{key: []byte(`"req_body":`), body: true}, // JSON lines
	{key: []byte(` req_body=`), body: true},  // zerolog's console writer (format: pretty)
	{key: []byte(`"displayname":`)},
	{key: []byte(`"expected_name":`)},
	{key: []byte(`"actual_name":`)},
	{key: []byte(` expected_name=`)},
	{key: []byte(` actual_name=`)},
}

func init() {
	for k := range lookups {
		for a, anchor := range anchors {
			if i := bytes.Index(lookups[k].key, anchor); i >= 0 {
				lookups[k].anchor, lookups[k].offset = a, i
			}
		}
	}
}

var redacted = []byte(`"***"`)

// redactNames returns line with the names replaced, in m.buf (owned) when there was one,
// else line itself.
func (m *masker) redactNames(line []byte) (out []byte, owned bool) {
	r := redactor{line: line, m: m}
	f := finder{line: line}
	for k := range f.at {
		f.at[k] = -2
	}
	for i := 0; ; {
		at, kind := f.next(i)
		if at < 0 {
			break
		}
		start := at + len(lookups[kind].key)
		i = start
		switch {
		case start >= len(line):
		case lookups[kind].body:
			if line[start] == '{' || line[start] == '[' {
				if end := r.walk(start); end > start {
					i = end
				}
			}
			// A body that is not JSON after all keeps what was replaced in it.
			i = max(i, r.done)
		case line[start] == '"':
			if end := stringEnd(line, start); end > 0 {
				r.replace(start, end)
				i = end
			}
		case line[at] == ' ': // the console writer leaves out the quotes of one word
			end := start
			for end < len(line) && line[end] != ' ' && line[end] != '\n' {
				end++
			}
			if end > start {
				r.replace(start, end)
				i = end
			}
		}
	}
	return r.finish()
}

// finder finds the next of the lookups in line, searching for each anchor again only
// once passed.
type finder struct {
	line []byte
	at   [len(anchors)]int // where each is from the last search; -1 none left, -2 not searched
}

func (f *finder) next(from int) (at, kind int) {
	for k := range anchors {
		if f.at[k] == -2 || (f.at[k] >= 0 && f.at[k] < from) {
			f.search(k, from)
		}
	}
	for {
		a := -1
		for k := range anchors {
			if f.at[k] >= 0 && (a < 0 || f.at[k] < f.at[a]) {
				a = k
			}
		}
		if a < 0 {
			return -1, -1
		}
		p := f.at[a]
		for k, l := range lookups {
			if start := p - l.offset; l.anchor == a && start >= from && bytes.HasPrefix(f.line[start:], l.key) {
				return start, k
			}
		}
		f.search(a, p+1) // only the anchor
	}
}

// search finds anchor k from from on.
func (f *finder) search(k, from int) {
	f.at[k] = -1
	if from <= len(f.line) {
		if i := bytes.Index(f.line[from:], anchors[k]); i >= 0 {
			f.at[k] = from + i
		}
	}
}

// redactor writes line into m.buf with the spans it replaces.
type redactor struct {
	line []byte
	m    *masker
	done int // line[:done] is in m.buf
	any  bool
}

func (r *redactor) replace(start, end int) {
	if !r.any {
		r.m.buf = r.m.buf[:0]
		r.any = true
	}
	r.m.buf = append(r.m.buf, r.line[r.done:start]...)
	r.m.buf = append(r.m.buf, redacted...)
	r.done = end
}

func (r *redactor) finish() ([]byte, bool) {
	if !r.any {
		return r.line, false
	}
	r.m.buf = append(r.m.buf, r.line[r.done:]...)
	return r.m.buf, true
}

// stringEnd returns the index after the JSON string starting at line[i] ('"'), or -1.
func stringEnd(line []byte, i int) int {
	for k := i + 1; k < len(line); k++ {
		switch line[k] {
		case '\\':
			k++
		case '"':
			return k + 1
		}
	}
	return -1
}

// frame is an object or array the walk is in, with the key its values sit under.
type frame struct {
	object bool
	key    []byte // an object's current key; an array's own key, for its elements
	hide   bool   // under a sensitive key: every string in it is hidden
}

func sensitive(key []byte) bool {
	switch string(key) {
	case "name", "topic", "displayname", "m.topic":
		return true
	}
	return false
}

type walkState int

const (
	wantValue      walkState = iota
	wantFirstKey             // after '{'
	wantKey                  // after ','
	wantFirstValue           // after '['
	afterValue
)

// walk reads the JSON value at line[i] ('{' or '['), replacing the names in it, and
// returns the index after it, or -1 where it is not JSON (what was replaced stays so).
func (r *redactor) walk(i int) int {
	line := r.line
	stack := r.m.stack[:0]
	defer func() { r.m.stack = stack[:0] }()
	state := wantValue
	var key []byte
	hide := false
	for {
		if state == afterValue && len(stack) == 0 {
			return i
		}
		for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r') {
			i++
		}
		if i >= len(line) {
			return -1
		}
		c := line[i]
		switch state {
		case wantValue:
			switch c {
			case '{', '[':
				stack = append(stack, frame{object: c == '{', key: key, hide: hide || sensitive(key)})
				i++
				state = wantFirstValue
				if c == '{' {
					state = wantFirstKey
				}
			case '"':
				end := stringEnd(line, i)
				if end < 0 {
					return -1
				}
				if hide || sensitive(key) {
					r.replace(i, end)
				}
				i, state = end, afterValue
			default: // a number, true, false, null
				start := i
				for i < len(line) && line[i] != ',' && line[i] != '}' && line[i] != ']' && line[i] != ' ' && line[i] != '"' {
					i++
				}
				if i == start {
					return -1
				}
				state = afterValue
			}
		case wantFirstValue:
			if c == ']' {
				stack = stack[:len(stack)-1]
				i, state = i+1, afterValue
				continue
			}
			top := stack[len(stack)-1]
			key, hide, state = top.key, top.hide, wantValue
		case wantFirstKey, wantKey:
			if c == '}' && state == wantFirstKey {
				stack = stack[:len(stack)-1]
				i, state = i+1, afterValue
				continue
			}
			if c != '"' {
				return -1
			}
			end := stringEnd(line, i)
			if end < 0 {
				return -1
			}
			top := &stack[len(stack)-1]
			top.key = line[i+1 : end-1]
			i = end
			for i < len(line) && line[i] == ' ' {
				i++
			}
			if i >= len(line) || line[i] != ':' {
				return -1
			}
			key, hide, state = top.key, top.hide, wantValue
			i++
		case afterValue:
			top := stack[len(stack)-1]
			switch {
			case c == ',':
				i++
				if top.object {
					state = wantKey
				} else {
					key, hide, state = top.key, top.hide, wantValue
				}
			case c == '}' && top.object, c == ']' && !top.object:
				stack = stack[:len(stack)-1]
				i++
			default:
				return -1
			}
		}
	}
}
