package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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

// TestProvisioningWhileStarting: IT links a clinic number through the provisioning API
// from the moment the bridge process starts, on PostgreSQL (its table upgrades make the
// window widest). Until the bridge is ready each call finds no listener or is answered
// 503 with Retry-After, never another 5xx or a panic; then the number is linked.
func TestProvisioningWhileStarting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dendrite and the bridge")
	}
	db := testenv.NewDatabase(t, "postgres")
	fake := testenv.NewFakeTwilio()
	t.Cleanup(fake.Close)
	fake.AddAccount(accountSID, authToken)
	fake.AddNumber(accountSID, clinicPhone)
	hs := testenv.NewDendrite(t)
	br := testenv.NewBridge(t, testenv.BridgeOptions{Homeserver: hs, DB: db, TwilioAPIURL: fake.URL()})
	hs.Start(br.RegistrationPath)
	adminID := hs.CreateUser(t, "admin", "admin-password-1")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	call := func(path string, body any) (status int, out map[string]any, refused bool) {
		var reader io.Reader = http.NoBody
		if body != nil {
			data, err := json.Marshal(body)
			require.NoError(t, err)
			reader = bytes.NewReader(data)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			br.URL()+"/_matrix/provision"+path+"?user_id="+url.QueryEscape(adminID), reader)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+br.ProvisioningSecret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			require.NoError(t, ctx.Err(), "the number was not linked in time")
			return 0, nil, true
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable:
			require.NotEmpty(t, resp.Header.Get("Retry-After"), "503 without Retry-After from %s: %s", path, data)
		case resp.StatusCode >= 300:
			t.Fatalf("%s answered %d while the bridge started: %s", path, resp.StatusCode, data)
		default:
			require.NoError(t, json.Unmarshal(data, &out), "%s", data)
		}
		return resp.StatusCode, out, false
	}

	br.Launch()
	launched := time.Now()
	refusedCalls, busyCalls := 0, 0
	var loginID string
	for loginID == "" {
		if exited, err := br.Exited(); exited {
			t.Fatalf("carebridge exited while starting: %v", err)
		}
		status, start, refused := call("/v3/login/start/auth-token", nil)
		if status == http.StatusOK {
			status, start, refused = call(fmt.Sprintf("/v3/login/step/%v/%v/user_input", start["login_id"], start["step_id"]),
				map[string]string{"account_sid": accountSID, "auth_token": authToken, "phone_number": clinicPhone})
			if status == http.StatusOK {
				require.Equal(t, "complete", start["type"], "%v", start)
				loginID = fmt.Sprint(start["complete"].(map[string]any)["user_login_id"])
				break
			}
		}
		if refused {
			refusedCalls++
		} else {
			busyCalls++
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("linked %s %v after launch; before that %d calls found no listener and %d were answered 503",
		loginID, time.Since(launched).Round(time.Millisecond), refusedCalls, busyCalls)
	assert.Positive(t, busyCalls, "the bridge served the provisioning API while it started")
	assert.NotContains(t, br.Log(), "panic")
}
