package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/internal/testenv"
)

// TestStartsFromExampleConfig: a new user generates the example, edits only the
// homeserver address and domain and the permissions, generates the registration, and the
// bridge starts against a real homeserver with every other default (SQLite, encryption).
func TestStartsFromExampleConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite and the bridge")
	}
	hs := testenv.NewDendrite(t)
	br := testenv.NewBridge(t, testenv.BridgeOptions{Homeserver: hs, MinimalEdits: true})
	hs.Start(br.RegistrationPath)
	br.Start()
	assert.Contains(t, br.Log(), "carebridge network connector started")
}

// TestRefusesToStartWithoutEncryption: a build without encryption (nocrypto) stops at
// once, before contacting the homeserver, when the config requires encryption (the default).
func TestRefusesToStartWithoutEncryption(t *testing.T) {
	if testing.Short() {
		t.Skip("builds carebridge without encryption")
	}
	noCrypto := testenv.BuildBridge(t, "goolm,nocrypto")
	hs := testenv.NewDendrite(t) // never started: the refusal must come first
	br := testenv.NewBridge(t, testenv.BridgeOptions{Homeserver: hs, MinimalEdits: true, Binary: noCrypto})
	out, err := br.Command("-c", br.ConfigPath(), "--ignore-unsupported-server").CombinedOutput()
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "carebridge must exit with an error, got %v\n%s", err, out)
	assert.Equal(t, 13, exitErr.ExitCode(), string(out))
	assert.Contains(t, string(out), "built without encryption")
}

// TestAProductionBinaryRefusesATestClockFile: the clock file the integration tests move
// time with is read only by a testclock build; the binary under test (a production
// build) stops at once when it is set, so that nobody believes time moved.
func TestAProductionBinaryRefusesATestClockFile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bridge binary")
	}
	cmd := exec.Command(testenv.BridgeBinary(t), "-c", filepath.Join(t.TempDir(), "config.yaml"))
	cmd.Env = append(os.Environ(), "CAREBRIDGE_TEST_CLOCK_FILE="+filepath.Join(t.TempDir(), "clock-offset"))
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "carebridge must exit with an error, got %v\n%s", err, out)
	assert.Equal(t, 13, exitErr.ExitCode(), string(out))
	assert.Contains(t, string(out), "CAREBRIDGE_TEST_CLOCK_FILE is set, but this carebridge binary was built without the testclock tag")
}

// refusal runs the bridge with a config edited by edit and returns its output and exit
// code; the homeserver is never started: the refusal must come first.
func refusal(t *testing.T, edit func(cfg map[string]any)) (string, int) {
	hs := testenv.NewDendrite(t)
	br := testenv.NewBridge(t, testenv.BridgeOptions{Homeserver: hs, MinimalEdits: true, Edit: edit})
	// A bridge that does not refuse waits for the homeserver: stop it after a while.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bin := br.Command()
	cmd := exec.CommandContext(ctx, bin.Path, "-c", br.ConfigPath(), "--ignore-unsupported-server")
	cmd.Dir = bin.Dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "carebridge must refuse at once, but ran on\n%s", out)
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "carebridge must exit with an error, got %v\n%s", err, out)
	return string(out), exitErr.ExitCode()
}

// TestRefusesToStartWithUnencryptedRooms: a config with encryption.default or
// encryption.require false stops at once, naming both keys and the override; with the
// override it starts, and says so in the log.
func TestRefusesToStartWithUnencryptedRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bridge")
	}
	for _, key := range []string{"default", "require"} {
		out, code := refusal(t, func(cfg map[string]any) {
			cfg["encryption"].(map[string]any)[key] = false
		})
		assert.Equal(t, 13, code, out)
		assert.Contains(t, out, "encryption.default and encryption.require must both be true")
		assert.Contains(t, out, "network.unsafe.unencrypted_rooms: true")
	}

	hs := testenv.NewDendrite(t)
	br := testenv.NewBridge(t, testenv.BridgeOptions{Homeserver: hs, DB: testenv.NewSQLite(t), Edit: func(cfg map[string]any) {
		cfg["encryption"].(map[string]any)["require"] = false
		cfg["network"].(map[string]any)["unsafe"] = map[string]any{"unencrypted_rooms": true}
	}})
	hs.Start(br.RegistrationPath)
	br.Start()
	assert.Contains(t, br.Log(), "UNSAFE CONFIG: network.unsafe.unencrypted_rooms is true")
}

// TestRefusesSimulatorOnPublicAddress: provider simulator with the example's public
// address (another machine's) stops at once and says what to set.
func TestRefusesSimulatorOnPublicAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bridge")
	}
	out, code := refusal(t, func(cfg map[string]any) {
		cfg["network"].(map[string]any)["provider"] = "simulator"
	})
	assert.Equal(t, 13, code, out)
	assert.Contains(t, out, "network.provider is simulator, but appservice.public_address is")
	assert.Contains(t, out, "network.unsafe.simulator_on_public_address: true")
}
