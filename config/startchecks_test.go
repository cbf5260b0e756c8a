package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

var safeStart = StartSettings{ListenHost: "127.0.0.1", PublicAddress: "http://127.0.0.1:29340",
	EncryptionDefault: true, EncryptionRequire: true}

func TestSimulatorRefusesAddressesOtherMachinesReach(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(s *StartSettings, c *Config)
		key  string
	}{
		"public address":   {func(s *StartSettings, _ *Config) { s.PublicAddress = "https://bridge.clinic.example" }, `appservice.public_address is "https://bridge.clinic.example"`},
		"no address":       {func(s *StartSettings, _ *Config) { s.PublicAddress = "" }, "appservice.public_address is \"\""},
		"listening on all": {func(s *StartSettings, _ *Config) { s.ListenHost = "0.0.0.0" }, `appservice.hostname is "0.0.0.0"`},
		"lan address":      {func(s *StartSettings, _ *Config) { s.PublicAddress = "http://192.168.1.20:29340" }, "appservice.public_address"},
		"override":         {func(_ *StartSettings, c *Config) { c.Twilio.PublicURLOverride = "https://demo.example" }, "network.twilio.public_url_override"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, s := validConfig(), safeStart
			cfg.Provider = ProviderSimulator
			c.edit(&s, &cfg)
			_, err := cfg.CheckStart(s)
			require.ErrorIs(t, err, ErrUnsafeStart)
			assert.ErrorContains(t, err, "network.provider is simulator, but "+c.key)
			assert.ErrorContains(t, err, "set network.unsafe.simulator_on_public_address: true", "the error says what to set")

			cfg.Unsafe.SimulatorOnPublicAddress = true
			warnings, err := cfg.CheckStart(s)
			require.NoError(t, err, "the acknowledgement lets it start")
			require.Len(t, warnings, 1, "and is logged")
			assert.Contains(t, warnings[0], "network.unsafe.simulator_on_public_address is true")
		})
	}
	for _, s := range []StartSettings{safeStart,
		{ListenHost: "localhost", PublicAddress: "http://localhost:29340", EncryptionDefault: true, EncryptionRequire: true},
		{ListenHost: "::1", PublicAddress: "http://[::1]:29340", EncryptionDefault: true, EncryptionRequire: true}} {
		cfg := validConfig()
		cfg.Provider = ProviderSimulator
		warnings, err := cfg.CheckStart(s)
		assert.NoError(t, err, "the demo on this machine starts: %+v", s)
		assert.Empty(t, warnings)
	}
	cfg, s := validConfig(), safeStart
	s.ListenHost, s.PublicAddress = "0.0.0.0", "https://bridge.clinic.example"
	warnings, err := cfg.CheckStart(s)
	assert.NoError(t, err, "twilio may be public")
	assert.Empty(t, warnings)
}

func TestUnencryptedRoomsRefused(t *testing.T) {
	for _, s := range []StartSettings{
		{ListenHost: "0.0.0.0", PublicAddress: "https://bridge.clinic.example", EncryptionDefault: false, EncryptionRequire: true},
		{ListenHost: "0.0.0.0", PublicAddress: "https://bridge.clinic.example", EncryptionDefault: true, EncryptionRequire: false},
		{ListenHost: "0.0.0.0", PublicAddress: "https://bridge.clinic.example"},
	} {
		cfg := validConfig()
		_, err := cfg.CheckStart(s)
		require.ErrorIs(t, err, ErrUnsafeStart)
		assert.ErrorContains(t, err, "encryption.default and encryption.require must both be true")
		assert.ErrorContains(t, err, "set network.unsafe.unencrypted_rooms: true")

		cfg.Unsafe.UnencryptedRooms = true
		warnings, err := cfg.CheckStart(s)
		require.NoError(t, err, "the override lets it start")
		require.Len(t, warnings, 1, "and is logged")
		assert.Contains(t, warnings[0], "network.unsafe.unencrypted_rooms is true")
	}
	cfg := validConfig()
	cfg.Unsafe.UnencryptedRooms = true
	warnings, err := cfg.CheckStart(safeStart)
	assert.NoError(t, err)
	assert.Empty(t, warnings, "an override that changes nothing is not reported")
}

func TestUnsafeOverridesDefaultToFalse(t *testing.T) {
	var cfg Config
	require.NoError(t, yaml.Unmarshal([]byte(ExampleConfig), &cfg))
	assert.False(t, cfg.Unsafe.SimulatorOnPublicAddress)
	assert.False(t, cfg.Unsafe.UnencryptedRooms)
	upgraded, _ := upgrade(t, "unsafe:\n    unencrypted_rooms: true\n")
	assert.True(t, upgraded.Unsafe.UnencryptedRooms, "the upgrader keeps an override")
	assert.False(t, upgraded.Unsafe.SimulatorOnPublicAddress)
}
