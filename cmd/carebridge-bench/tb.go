package main

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// benchTB lets the benchmark use internal/testenv, which is written for tests: Fatal
// and Skip unwind to run (which recovers), and Cleanup functions run when the run ends.
type benchTB struct {
	testing.TB // nil: only the methods below are called by testenv
	name       string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// tbAbort is what Fatal and Skip panic with; run recovers it.
type tbAbort struct {
	skipped bool
	msg     string
}

var _ testing.TB = (*benchTB)(nil)

func newBenchTB(name string) *benchTB { return &benchTB{name: name} }

func (t *benchTB) Helper()      {}
func (t *benchTB) Name() string { return t.name }
func (t *benchTB) Log(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"[" + t.name + "]"}, args...)...)
}
func (t *benchTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "["+t.name+"] "+format+"\n", args...)
}
func (t *benchTB) Error(args ...any) { t.Fail(); t.Log(args...) }
func (t *benchTB) Errorf(format string, args ...any) {
	t.Fail()
	t.Logf(format, args...)
}
func (t *benchTB) Fail() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}
func (t *benchTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *benchTB) FailNow() {
	t.Fail()
	panic(tbAbort{msg: "failed"})
}
func (t *benchTB) Fatal(args ...any) {
	t.Fail()
	panic(tbAbort{msg: fmt.Sprint(args...)})
}
func (t *benchTB) Fatalf(format string, args ...any) {
	t.Fail()
	panic(tbAbort{msg: fmt.Sprintf(format, args...)})
}
func (t *benchTB) Skip(args ...any) { panic(tbAbort{skipped: true, msg: fmt.Sprint(args...)}) }
func (t *benchTB) Skipf(format string, args ...any) {
	panic(tbAbort{skipped: true, msg: fmt.Sprintf(format, args...)})
}
func (t *benchTB) SkipNow()      { panic(tbAbort{skipped: true, msg: "skipped"}) }
func (t *benchTB) Skipped() bool { return false }

func (t *benchTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

func (t *benchTB) TempDir() string {
	dir, err := os.MkdirTemp("", "carebridge-bench-")
	if err != nil {
		t.Fatalf("failed to make a temporary folder: %v", err)
	}
	if keepFolders {
		note("keeping %s", dir)
	} else {
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	return dir
}

// keepFolders is -keep: the run's folders (the bridge's log, the homeserver's) stay.
var keepFolders bool

func (t *benchTB) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	_ = os.Setenv(key, value)
	t.Cleanup(func() {
		if had {
			_ = os.Setenv(key, old)
		} else {
			_ = os.Unsetenv(key)
		}
	})
}

// runCleanups runs the registered cleanups, last first, as testing does.
func (t *benchTB) runCleanups() {
	for {
		t.mu.Lock()
		if len(t.cleanups) == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[len(t.cleanups)-1]
		t.cleanups = t.cleanups[:len(t.cleanups)-1]
		t.mu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Logf("cleanup failed: %v", r)
				}
			}()
			f()
		}()
	}
}

// guard runs f with t, turning a Fatal or Skip into an error or a skip message, and
// always runs the cleanups.
func guard(t *benchTB, f func()) (skipped string, err error) {
	defer t.runCleanups()
	defer func() {
		if r := recover(); r != nil {
			if a, ok := r.(tbAbort); ok {
				if a.skipped {
					skipped = a.msg
					return
				}
				err = fmt.Errorf("%s", a.msg)
				return
			}
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	f()
	return "", nil
}
