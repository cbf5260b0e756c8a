package main

import (
	"errors"
	"os/exec"
	"testing"

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
