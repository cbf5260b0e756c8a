package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// progress shows one line on stderr while a phase runs: redrawn in place on a terminal,
// every few seconds otherwise (a log file should not fill with redraws).
type progress struct {
	mu    sync.Mutex
	label string
	total int
	sent  atomic.Int64
	seen  atomic.Int64
	stop  chan struct{}
	done  chan struct{}
}

var stderrIsTerminal = func() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}()

func startProgress(label string, total int) *progress {
	p := &progress{label: label, total: total, stop: make(chan struct{}), done: make(chan struct{})}
	every := 5 * time.Second
	if stderrIsTerminal {
		every = 300 * time.Millisecond
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				if stderrIsTerminal {
					fmt.Fprint(os.Stderr, "\r\033[K")
				}
				return
			case <-t.C:
				p.print()
			}
		}
	}()
	return p
}

func (p *progress) print() {
	line := fmt.Sprintf("%s: %d/%d sent, %d/%d seen", p.label, p.sent.Load(), p.total, p.seen.Load(), p.total)
	if stderrIsTerminal {
		fmt.Fprint(os.Stderr, "\r\033[K"+line)
	} else {
		fmt.Fprintln(os.Stderr, line)
	}
}

func (p *progress) end() {
	close(p.stop)
	<-p.done
}

// note prints a step on stderr.
func note(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...)
}
