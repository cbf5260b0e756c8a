package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/dendrite"
	"github.com/carebridge/carebridge/internal/synapse"
	"github.com/carebridge/carebridge/internal/testenv"
)

// TestDemoAndScript runs what a newcomer runs: `make demo` (the demo binary, on its
// default ports, with a fresh data folder) and `make demo-script` against it, then stops
// the demo with Ctrl-C; once per homeserver (`make demo HOMESERVER=synapse`).
func TestDemoAndScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a homeserver and the bridge")
	}
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	bin := t.TempDir()
	for _, pkg := range []string{"carebridge", "carebridge-demo"} {
		build := exec.Command("go", "build", "-tags", "goolm", "-o", filepath.Join(bin, pkg), "./cmd/"+pkg)
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		out, err := build.CombinedOutput()
		require.NoError(t, err, "go build ./cmd/%s:\n%s", pkg, out)
	}
	for _, kind := range testenv.HomeserverKinds(t) {
		t.Run(kind, func(t *testing.T) { runDemoAndScript(t, root, bin, kind) })
	}
}

func runDemoAndScript(t *testing.T, root, bin, kind string) {
	if kind == testenv.HomeserverSynapse {
		_, err := synapse.Venv(root)
		testenv.RequireDep(t, testenv.DepSynapse, err)
	} else {
		_, err := dendrite.BinDir(root)
		testenv.RequireDep(t, testenv.DepDendrite, err)
	}
	// Ports of its own: other packages' tests (and a developer's `make demo`) may hold the
	// defaults; the flags are the ones `make demo` leaves at their defaults.
	hsPort, bridgePort := testenv.FreePort(t), testenv.FreePort(t)
	bridgeURL := fmt.Sprintf("http://127.0.0.1:%d", bridgePort)

	demo := startDemo(t, root, filepath.Join(bin, "carebridge-demo"), filepath.Join(bin, "carebridge"), t.TempDir(),
		"-homeserver-port", fmt.Sprint(hsPort), "-bridge-port", fmt.Sprint(bridgePort), "-homeserver-kind", kind)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "carebridge-demo"), "script",
		"-bridge", bridgeURL, "-homeserver", fmt.Sprintf("http://127.0.0.1:%d", hsPort)).CombinedOutput()
	transcript := string(out)
	t.Logf("demo-script (%.1fs):\n%s", time.Since(start).Seconds(), transcript)
	require.NoError(t, err, "demo-script must exit 0")

	for _, line := range []string{
		"PATIENT (SMS, +155501",
		"→ clinic " + clinicNumber + "): " + patientText,
		"STAFF sees in Element (encrypted room, decrypted, from (555) 01",
		"STAFF: !sms secure",
		"BRIDGE notice: 🔒 Secure mode",
		"STAFF (secure, encrypted, not texted): " + staffSecure,
		"PATIENT's phone receives SMS from " + clinicNumber + ": Riverside Family Clinic (demo): you have a new secure message. Open it here: " + bridgeURL + "/s/",
		"CHECK: the alert holds no word of the staff message",
		"(code shown: demo only): Riverside Family Clinic (demo): your code is ",
		"PATIENT reads in the secure chat (from nurse — Riverside Family Clinic (demo)): " + staffSecure,
		"PATIENT (secure chat): " + patientRepl,
		"): 🔒 " + patientRepl,
		`photo "` + photoName + `", image/png`,
		"encrypted attachment downloaded and decrypted, identical to the photo the patient uploaded",
		"Transcript complete: 7 steps, the staff's secure message never travelled by SMS.",
	} {
		assert.Contains(t, transcript, line)
	}
	alert := strings.Index(transcript, "you have a new secure message")
	require.Positive(t, alert)
	assert.NotContains(t, transcript[alert:strings.Index(transcript[alert:], "\n")+alert], "Leo",
		"the alert line carries nothing of the staff message")

	stopped := time.Now()
	require.NoError(t, demo.interrupt(20*time.Second), "Ctrl-C stops the demo within 20 s\n%s", demo.output())
	t.Logf("demo stopped %.1fs after Ctrl-C", time.Since(stopped).Seconds())
	assert.Contains(t, demo.output(), "==> Stopping")
}

// runningDemo is the demo binary in the background, its output kept.
type runningDemo struct {
	cmd    *exec.Cmd
	exited chan error

	mu  sync.Mutex
	out strings.Builder
}

// startDemo starts the demo and waits until it says it is running; the test's cleanup
// stops it when the test did not.
func startDemo(t *testing.T, root, demoBin, bridgeBin, dataDir string, extraArgs ...string) *runningDemo {
	t.Helper()
	d := &runningDemo{exited: make(chan error, 1)}
	d.cmd = exec.Command(demoBin, append([]string{"-data", dataDir, "-bridge", bridgeBin}, extraArgs...)...)
	d.cmd.Dir = root // the demo finds (or installs) Dendrite from the repository
	stdout, err := d.cmd.StdoutPipe()
	require.NoError(t, err)
	d.cmd.Stderr = d.cmd.Stdout
	require.NoError(t, d.cmd.Start())
	running := make(chan struct{})
	go func() {
		scanner := bufio.NewScanner(stdout)
		signalled := false
		for scanner.Scan() {
			d.mu.Lock()
			d.out.WriteString(scanner.Text() + "\n")
			d.mu.Unlock()
			if !signalled && strings.Contains(scanner.Text(), "carebridge demo is running") {
				close(running)
				signalled = true
			}
		}
		d.exited <- d.cmd.Wait()
	}()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			if err := d.interrupt(20 * time.Second); err != nil {
				t.Errorf("the demo did not stop: %v", err)
			}
		}
	})
	select {
	case <-running:
	case err := <-d.exited:
		d.exited <- err
		t.Fatalf("the demo stopped before it was running: %v\n%s", err, d.output())
	case <-time.After(4 * time.Minute):
		t.Fatalf("the demo did not say it was running within 4 minutes:\n%s", d.output())
	}
	return d
}

// interrupt sends Ctrl-C and waits for the demo to exit.
func (d *runningDemo) interrupt(within time.Duration) error {
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case err := <-d.exited:
		d.exited <- err
		return err
	case <-time.After(within):
		_ = d.cmd.Process.Kill()
		return fmt.Errorf("still running %s after SIGINT (killed)", within)
	}
}

func (d *runningDemo) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}
