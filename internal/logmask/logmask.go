// Package logmask keeps patients' phone numbers and names out of carebridge's logs: every
// log writer mxmain builds from the config (stdout, stderr, file, syslog, journald) is
// wrapped so that a phone number is written with only its last four digits (+*******4567),
// and the display names, room names and topics in the Matrix requests mautrix logs at
// debug level (they carry the patient's name) as "***". bridgev2 names ghosts, portals and
// rooms after the number, so this happens at the writer, for every line.
package logmask

import (
	"bytes"
	"io"
	"log/syslog"
	"regexp"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/journald"
	"go.mau.fi/zeroconfig"
	"gopkg.in/natefinch/lumberjack.v2"
)

type rule struct {
	re *regexp.Regexp
	// keep lists the submatches written as they are; the others become '*' per byte.
	keep []int
}

// The forms a number takes in bridgev2's and carebridge's log lines.
var rules = []rule{
	// E.164 (+15551234567), URL-encoded (%2B15551234567), a ghost (sms_15551234567).
	{regexp.MustCompile(`(\+|%2[Bb]|sms_)(\d{5,11})(\d{4})(\D|$)`), []int{1, 3, 4}},
	// An ID that is a bare number: a JSON string ("15551234567"), key=value (pretty logs),
	// a path segment, or part of a local room ID (!15551234567.15550001111:example.org).
	{regexp.MustCompile(`(["=/!.])(\d{6,11})(\d{4})(["/\s.:]|$)`), []int{1, 3, 4}},
	// National formats: (555) 123-4567, 555-123-4567, 555.123.4567.
	{regexp.MustCompile(`(\()(\d{3})(\) ?)(\d{3})(-)(\d{4})(\D|$)`), []int{1, 3, 5, 6, 7}},
	{regexp.MustCompile(`(^|\D)(\d{3})([-.])(\d{3})([-.])(\d{4})(\D|$)`), []int{1, 3, 5, 6, 7}},
}

// jsonString is a JSON string literal.
const jsonString = `"(?:[^"\\]|\\.)*"`

// redactions replace values that name a patient: display names (ghost profiles, the
// m.bridge channel) anywhere, and the body of m.room.name and m.room.topic requests.
var redactions = []struct {
	re   *regexp.Regexp
	with []byte
}{
	{regexp.MustCompile(`"displayname":` + jsonString), []byte(`"displayname":"***"`)},
	{regexp.MustCompile(`"req_body":\{"name":` + jsonString), []byte(`"req_body":{"name":"***"`)},
	{regexp.MustCompile(`"req_body":\{"topic":` + jsonString), []byte(`"req_body":{"topic":"***"`)},
}

// Mask returns line with every phone number reduced to its last four digits, and patient
// names in Matrix requests replaced.
func Mask(line []byte) []byte {
	for _, r := range redactions {
		line = r.re.ReplaceAllLiteral(line, r.with)
	}
	for _, r := range rules {
		// A match ends with the character after the number, which may start the next
		// one ("+15551234567/+15550001111"): run until nothing changes.
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

func (r rule) mask(m []byte) []byte {
	idx := r.re.FindSubmatchIndex(m)
	out := make([]byte, 0, len(m))
	for g := 1; g*2 < len(idx); g++ {
		part := m[idx[2*g]:idx[2*g+1]]
		if contains(r.keep, g) {
			out = append(out, part...)
		} else {
			out = append(out, bytes.Repeat([]byte{'*'}, len(part))...)
		}
	}
	return out
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

type writer struct{ w io.Writer }

type levelWriter struct {
	writer
	lw zerolog.LevelWriter
}

// Wrap masks phone numbers in everything written to w (one log line per write, as
// zerolog writes). A zerolog.LevelWriter stays one.
func Wrap(w io.Writer) io.Writer {
	if lw, ok := w.(zerolog.LevelWriter); ok {
		return levelWriter{writer{w}, lw}
	}
	return writer{w}
}

func (w writer) Write(p []byte) (int, error) {
	if _, err := w.w.Write(Mask(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w levelWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if _, err := w.lw.WriteLevel(level, Mask(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Install wraps the writers zeroconfig builds; call it before mxmain compiles the
// logging config.
func Install() {
	zeroconfig.Stdout = Wrap(zeroconfig.Stdout)
	zeroconfig.Stderr = Wrap(zeroconfig.Stderr)
	zeroconfig.RegisterWriter(zeroconfig.WriterTypeFile, func(wc *zeroconfig.WriterConfig) (io.Writer, error) {
		file := &lumberjack.Logger{Filename: wc.Filename, MaxSize: wc.MaxSize, MaxAge: wc.MaxAge,
			MaxBackups: wc.MaxBackups, LocalTime: wc.LocalTime, Compress: wc.Compress}
		if err := file.Rotate(); err != nil {
			return nil, err
		}
		return Wrap(file), nil
	})
	compileSyslog := func(wc *zeroconfig.WriterConfig) (io.Writer, error) {
		sl, err := syslog.Dial(wc.Network, wc.Host, syslog.Priority(wc.Flags), wc.Tag)
		if err != nil {
			return nil, err
		}
		if wc.Type == zeroconfig.WriterTypeSyslogCEE {
			return Wrap(zerolog.SyslogCEEWriter(sl)), nil
		}
		return Wrap(zerolog.SyslogLevelWriter(sl)), nil
	}
	zeroconfig.RegisterWriter(zeroconfig.WriterTypeSyslog, compileSyslog)
	zeroconfig.RegisterWriter(zeroconfig.WriterTypeSyslogCEE, compileSyslog)
	zeroconfig.RegisterWriter(zeroconfig.WriterTypeJournald, func(*zeroconfig.WriterConfig) (io.Writer, error) {
		return Wrap(journald.NewJournalDWriter()), nil
	})
}
