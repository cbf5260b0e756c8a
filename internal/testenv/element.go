package testenv

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// DepElementCrypto names the npm packages of Element's crypto (matrix-js-sdk, its Rust
// crypto, matrix-encrypt-attachment) and Node, for RequireDep.
const DepElementCrypto = "matrix-js-sdk (Element's crypto)"

// The versions scripts/test-deps.sh installs into ~/.cache/carebridge/node.
const (
	MatrixJSSDKVersion       = "43.0.0"
	CryptoWasmVersion        = "18.9.0"
	EncryptAttachmentVersion = "1.0.3"
)

func init() {
	installHints[DepElementCrypto] = "make deps (npm install -E matrix-js-sdk@" + MatrixJSSDKVersion +
		" @matrix-org/matrix-sdk-crypto-wasm@" + CryptoWasmVersion + " matrix-encrypt-attachment@" +
		EncryptAttachmentVersion + " into ~/.cache/carebridge/node; needs node)"
}

//go:embed element_agent.mjs
var elementAgentScript []byte

var (
	elementCheckOnce sync.Once
	elementModules   string
	elementCheckErr  error
)

// ElementCryptoAvailable returns the node_modules folder holding Element's crypto, or why
// it cannot run here.
func ElementCryptoAvailable() (string, error) {
	elementCheckOnce.Do(func() {
		if _, err := exec.LookPath("node"); err != nil {
			elementCheckErr = err
			return
		}
		elementModules = filepath.Join(cacheDir(), "node", "node_modules")
		for pkg, version := range map[string]string{
			"matrix-js-sdk":                      MatrixJSSDKVersion,
			"@matrix-org/matrix-sdk-crypto-wasm": CryptoWasmVersion,
			"matrix-encrypt-attachment":          EncryptAttachmentVersion,
		} {
			raw, err := os.ReadFile(filepath.Join(elementModules, pkg, "package.json"))
			if err != nil {
				elementCheckErr = err
				return
			}
			var meta struct {
				Version string `json:"version"`
			}
			if err = json.Unmarshal(raw, &meta); err != nil || meta.Version != version {
				elementCheckErr = fmt.Errorf("%s is %q in %s, want %s", pkg, meta.Version, elementModules, version)
				return
			}
		}
	})
	return elementModules, elementCheckErr
}

// ElementOptions are the settings of an Element agent, as a person sets them in Element.
type ElementOptions struct {
	// ExcludeInsecureDevices is Element's "Exclude insecure devices when sending or
	// receiving messages" (MSC4153; matrix-js-sdk's OnlySignedDevicesIsolationMode):
	// room keys go only to devices their owner cross-signed (others get
	// m.room_key.withheld, m.unverified), and messages from devices their owner did not
	// cross-sign do not decrypt (TrustRequirement CrossSignedOrLegacy).
	ExcludeInsecureDevices bool
	// CrossSign sets up cross-signing for the user (a new identity, as Element does at a
	// first login) and signs this device with it, unless Secrets is given.
	CrossSign bool
	// Secrets, from another device's ExportSecrets, makes this device a second device
	// of the same identity, as Element's QR-code login does: it takes the cross-signing
	// keys and signs itself.
	Secrets string
}

// ElementAgent is a member of staff in Element: matrix-js-sdk with its Rust crypto (the
// crypto Element Web and Element X run) in a Node process, logged in with a new device.
// It does what StaffAgent does (joins every room it is invited to, records every
// message) and adds to each encrypted message the shield Element would show
// (AgentMessage.Shield, ShieldReason).
type ElementAgent struct {
	*StaffAgent
}

// StartElementAgent logs userID in with a new device running Element's crypto and
// returns once its keys are on the homeserver (and, with opts.CrossSign, cross-signed).
// It is closed by t.Cleanup. The test is skipped (failed in CI) when the npm packages
// are missing.
func StartElementAgent(t testing.TB, homeserverURL, userID, password string, opts ElementOptions) *ElementAgent {
	t.Helper()
	modules, err := ElementCryptoAvailable()
	RequireDep(t, DepElementCrypto, err)
	dir := t.TempDir()
	script := filepath.Join(dir, "element_agent.mjs")
	if err := os.WriteFile(script, elementAgentScript, 0o600); err != nil {
		t.Fatalf("failed to write Element agent script: %v", err)
	}
	options, _ := json.Marshal(map[string]any{
		"exclude_insecure_devices": opts.ExcludeInsecureDevices,
		"cross_sign":               opts.CrossSign || opts.Secrets != "",
		"secrets":                  opts.Secrets,
	})
	return &ElementAgent{startAgent(t, userID, dir, "node", script, modules, homeserverURL, userID, password, string(options))}
}

// ElementDevice is a device of a user as Element's crypto sees it.
type ElementDevice struct {
	DeviceID string `json:"device_id"`
	// SignedByOwner: the owner's self-signing key signed it (cross-signed); Element
	// calls a device without it insecure ("not verified by its owner").
	SignedByOwner bool `json:"signed_by_owner"`
	// CrossSigningVerified: signed by its owner, whose identity this user verified.
	CrossSigningVerified bool   `json:"cross_signing_verified"`
	Verified             bool   `json:"verified"`
	DisplayName          string `json:"display_name"`
}

// Devices fetches userID's devices and returns them as Element would list them.
func (a *ElementAgent) Devices(ctx context.Context, userID string) ([]ElementDevice, error) {
	reply, err := a.request(ctx, map[string]any{"cmd": "devices", "user_id": userID})
	if err != nil {
		return nil, fmt.Errorf("failed to list %s's devices: %w", userID, err)
	}
	var out struct {
		Devices []ElementDevice `json:"devices"`
	}
	if err = json.Unmarshal(reply.raw, &out); err != nil {
		return nil, err
	}
	return out.Devices, nil
}

// ExportSecrets returns this device's cross-signing keys (a secrets bundle) for a second
// device of the same user (ElementOptions.Secrets). It needs ElementOptions.CrossSign.
func (a *ElementAgent) ExportSecrets(ctx context.Context) (string, error) {
	reply, err := a.request(ctx, map[string]any{"cmd": "export_secrets"})
	if err != nil {
		return "", err
	}
	var out struct {
		Secrets string `json:"secrets"`
	}
	if err = json.Unmarshal(reply.raw, &out); err != nil {
		return "", err
	}
	if out.Secrets == "" {
		return "", errors.New("the agent exported no secrets")
	}
	return out.Secrets, nil
}

// cacheDir is where scripts/test-deps.sh installs: $CAREBRIDGE_CACHE, else
// ~/.cache/carebridge.
func cacheDir() string {
	if dir := os.Getenv("CAREBRIDGE_CACHE"); dir != "" {
		return dir
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "carebridge")
}

// StderrPath is the agent's stderr (the SDK's log).
func (a *ElementAgent) StderrPath() string { return a.stderrPath }
