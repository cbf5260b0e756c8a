// Package logmask keeps patients' phone numbers and names out of carebridge's logs: every
// log writer mxmain builds from the config (stdout, stderr, file, syslog, journald) is
// wrapped so that a phone number is written with only its last four digits (+*******4567),
// and the names, room names and topics in the Matrix request bodies mautrix logs at debug
// level (they carry the patient's name) as "***". bridgev2 names ghosts, portals and rooms
// after the number, so this happens at the writer, for every line: one pass, no regexp.
package logmask

import (
	"bytes"
	"io"
	"log/syslog"
	"sync"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/journald"
	"go.mau.fi/zeroconfig"
	"gopkg.in/natefinch/lumberjack.v2"
)

// Mask returns line with every phone number reduced to its last four digits, and patient
// names in Matrix request bodies replaced. It returns line itself when nothing is masked
// (no copy, no allocation), else a new slice; line is never changed.
func Mask(line []byte) []byte {
	m := maskers.Get().(*masker)
	defer maskers.Put(m)
	out := m.mask(line)
	if len(out) > 0 && &out[0] != &line[0] {
		return bytes.Clone(out)
	}
	return out
}

// masker holds what one Mask call needs, so that the writers reuse it (a pool) and
// allocate nothing per line once warm.
type masker struct {
	buf   []byte  // the masked copy, when there is one
	stack []frame // the JSON walk of a request body
}

var maskers = sync.Pool{New: func() any { return new(masker) }}

func (m *masker) mask(line []byte) []byte {
	out, owned := m.redactNames(line)
	return m.maskNumbers(out, owned)
}

type writer struct{ w io.Writer }

type levelWriter struct {
	writer
	lw zerolog.LevelWriter
}

// Wrap masks phone numbers and names in everything written to w (one log line per write, as
// zerolog writes). A zerolog.LevelWriter stays one.
func Wrap(w io.Writer) io.Writer {
	if lw, ok := w.(zerolog.LevelWriter); ok {
		return levelWriter{writer{w}, lw}
	}
	return writer{w}
}

func (w writer) Write(p []byte) (int, error) {
	m := maskers.Get().(*masker)
	defer maskers.Put(m)
	if _, err := w.w.Write(m.mask(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w levelWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	m := maskers.Get().(*masker)
	defer maskers.Put(m)
	if _, err := w.lw.WriteLevel(level, m.mask(p)); err != nil {
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
