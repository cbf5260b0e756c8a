package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profileChunk is the length of each CPU profile taken while a measurement runs; the
// chunks of one measurement are files `go tool pprof` merges when given together.
const profileChunk = 5 * time.Second

// profiler takes CPU profiles of the bridge (network.metrics.pprof) while measurements run.
type profiler struct {
	dir, base, kind string
}

// profile profiles the bridge until the returned stop is called, into
// dir/<db>-<name>-<n>.pprof. Stop waits for the chunk in progress: the bridge profiles
// one request at a time.
func (p *profiler) profile(ctx context.Context, name string) (stop func()) {
	if p == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; ctx.Err() == nil; i++ {
			path := filepath.Join(p.dir, fmt.Sprintf("%s-%s-%d.pprof", p.kind, name, i))
			if err := p.chunk(path); err != nil {
				note("[%s] profile of %s: %v", p.kind, name, err)
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// chunk saves one CPU profile of profileChunk. It is not cancelled with the measurement:
// a profile cut short is lost, and the next could not start before it ends.
func (p *profiler) chunk(path string) error {
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.base, int(profileChunk/time.Second))
	client := http.Client{Timeout: profileChunk + 30*time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the bridge answered HTTP %d (is network.metrics.pprof on?)", resp.StatusCode)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	} else if len(data) == 0 {
		return errors.New("empty profile")
	}
	return os.WriteFile(path, data, 0o644)
}
