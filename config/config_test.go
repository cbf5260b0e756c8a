package config

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	up "go.mau.fi/util/configupgrade"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/bridgev2/matrix/mxmain"
)

const (
	testKey1 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // "0123456789abcdef0123456789abcdef"
	testKey2 = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=" // "fedcba9876543210fedcba9876543210"
)

func validConfig() Config {
	return Config{
		Provider:      ProviderTwilio,
		ClinicName:    "Riverside Family Clinic",
		DefaultRegion: "us",
		StaffInvites:  []string{"@nurse.kim:clinic.example"},
		MaxSegments:   10,
		SecureChat: SecureChatConfig{DefaultMode: "sms", Keys: map[string]string{"k1": testKey1}, CurrentKey: "k1",
			LinkLifetime: 72 * time.Hour, CodeLifetime: 10 * time.Minute, MaxWrongCodes: 5, CodesPerHour: 5,
			SessionIdle: 15 * time.Minute, SessionMax: 12 * time.Hour, AlertQuietPeriod: 15 * time.Minute, ReminderAfter: 24 * time.Hour,
			Language: "en", MaxUploadMB: 20, RetentionDays: 30},
		Keywords: KeywordsConfig{HelpText: "{clinic_name}: reply STOP to opt out.", OptOutReply: "Unsubscribed.", OptInReply: "Subscribed."},
		Twilio:   TwilioConfig{RequestTimeout: 15 * time.Second, MediaURLLifetime: time.Hour},
		Inbound:  InboundConfig{RetryInterval: 5 * time.Second, MaxRetryInterval: time.Minute, Concurrency: 8, CatchUpInterval: 10 * time.Minute},
		Outbox:   OutboxConfig{Concurrency: 16, RetryInterval: time.Second, MaxRetryInterval: time.Minute, MaxAttempts: 8},
	}
}

func TestExampleConfigParsesAndValidates(t *testing.T) {
	var cfg Config
	require.NoError(t, yaml.Unmarshal([]byte(ExampleConfig), &cfg))
	assert.Equal(t, map[string]string{"k1": "generate"}, cfg.SecureChat.Keys, "the example asks for a generated key")
	assert.Equal(t, "k1", cfg.SecureChat.CurrentKey)
	assert.Empty(t, cfg.SecureChat.EncryptionKey, "the single key of older versions is gone from the example")
	cfg.SecureChat.Keys["k1"] = testKey1
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "Example Clinic", cfg.ClinicName)
	assert.Equal(t, 15*time.Second, cfg.Twilio.RequestTimeout)
	assert.Equal(t, 5*time.Minute, cfg.Inbound.MaxRetryInterval)
	assert.Equal(t, OutboxConfig{Concurrency: 16, RetryInterval: time.Second, MaxRetryInterval: time.Minute, MaxAttempts: 8}, cfg.Outbox)
	assert.Equal(t, AuditConfig{HeadInterval: time.Hour}, cfg.Audit, "no audit head notices unless a room is given")
	assert.Equal(t, "You will receive no more texts from Example Clinic. Reply START to receive texts again.",
		cfg.Render(cfg.Keywords.OptOutReply))
}

func TestValidateNamesKeyAndFix(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"unknown provider", func(c *Config) { c.Provider = "vonage" }, "network.provider is \"vonage\""},
		{"empty clinic name", func(c *Config) { c.ClinicName = " " }, "network.clinic_name is empty"},
		{"unknown region", func(c *Config) { c.DefaultRegion = "USA" }, "network.default_region"},
		{"bad staff id", func(c *Config) { c.StaffInvites = []string{"nurse.kim"} }, "network.staff_invites[0]"},
		{"empty localpart", func(c *Config) { c.StaffInvites = []string{"@kim:c.example", "@:clinic.example"} }, "network.staff_invites[1]"},
		{"room alias", func(c *Config) { c.StaffInvites = []string{"#triage:clinic.example"} }, "network.staff_invites[0]"},
		{"relative api url", func(c *Config) { c.Twilio.APIURL = "/twilio" }, "network.twilio.api_url"},
		{"ftp public url", func(c *Config) { c.Twilio.PublicURLOverride = "ftp://x" }, "network.twilio.public_url_override"},
		{"empty help text", func(c *Config) { c.Keywords.HelpText = "" }, "network.keywords.help_text is empty"},
		{"long opt-out reply", func(c *Config) { c.Keywords.OptOutReply = strings.Repeat("x", 321) }, "network.keywords.opt_out_reply"},
		{"media link forever", func(c *Config) { c.Twilio.MediaURLLifetime = 30 * 24 * time.Hour }, "network.twilio.media_url_lifetime"},
		{"eleven segments", func(c *Config) { c.MaxSegments = 11 }, "network.max_segments is 11"},
		{"unknown mode", func(c *Config) { c.SecureChat.DefaultMode = "email" }, "network.secure_chat.default_mode"},
		{"long codes", func(c *Config) { c.SecureChat.CodeLifetime = time.Hour }, "NIST SP 800-63B"},
		{"short key", func(c *Config) { c.SecureChat.Keys["k1"] = "c2hvcnQ=" }, "network.secure_chat.keys.k1 is 5 bytes: a key must be 32 bytes"},
		{"ungenerated key", func(c *Config) { c.SecureChat.Keys["k1"] = "generate" }, "network.secure_chat.keys.k1 is still \"generate\""},
		{"not base64", func(c *Config) { c.SecureChat.Keys["k1"] = "the clinic's key!" }, "network.secure_chat.keys.k1 is not valid base64"},
		{"unknown current key", func(c *Config) { c.SecureChat.CurrentKey = "k2" }, "network.secure_chat.current_key is \"k2\", which is not in secure_chat.keys (k1)"},
		{"no current key", func(c *Config) { c.SecureChat.Keys["k2"] = testKey2; c.SecureChat.CurrentKey = "" }, "network.secure_chat.current_key is empty: name the key new data is sealed with (one of k1, k2)"},
		{"same key twice", func(c *Config) { c.SecureChat.Keys["k2"] = testKey1 }, "network.secure_chat.keys.k2 is the same key as k1"},
		{"no keys", func(c *Config) { c.SecureChat.Keys = nil }, "network.secure_chat.keys is empty"},
		{"env without variable", func(c *Config) { c.SecureChat.Keys["k2"] = "env" }, "network.secure_chat.keys.k2 is \"env\" but CAREBRIDGE_SECURE_CHAT_KEY_K2 is not set"},
		{"bad key id", func(c *Config) { c.SecureChat.Keys["key one"] = testKey2 }, "network.secure_chat.keys has the ID \"key one\""},
		{"clinic phone not E.164", func(c *Config) { c.SecureChat.Pages.ClinicPhone = "(555) 000-1111" }, "network.secure_chat.pages.clinic_phone is \"(555) 000-1111\": write the number in E.164 form"},
		{"relative privacy url", func(c *Config) { c.SecureChat.Pages.PrivacyURL = "/privacy" }, "network.secure_chat.pages.privacy_url is \"/privacy\""},
		{"script help url", func(c *Config) { c.SecureChat.Pages.HelpURL = "javascript:alert(1)" }, "network.secure_chat.pages.help_url"},
		{"staff role by name", func(c *Config) { c.SecureChat.Pages.StaffRoles = map[string]string{"Jane": "Nurse"} }, "network.secure_chat.pages.staff_roles has \"Jane\": list staff by Matrix ID"},
		{"empty staff role", func(c *Config) { c.SecureChat.Pages.StaffRoles = map[string]string{"@jane:clinic.example": " "} }, "network.secure_chat.pages.staff_roles.@jane:clinic.example is \"\": write a role of 1 to 40 characters"},
		{"ids sharing a variable", func(c *Config) { c.SecureChat.Keys["k-2"] = testKey2; c.SecureChat.Keys["k_2"] = "env" }, "share the environment variable CAREBRIDGE_SECURE_CHAT_KEY_K_2"},
		{"old key differs from k1", func(c *Config) { c.SecureChat.EncryptionKey = testKey2 }, "network.secure_chat.encryption_key is the single key of older versions"},
		{"zero timeout", func(c *Config) { c.Twilio.RequestTimeout = 0 }, "network.twilio.request_timeout"},
		{"retry backwards", func(c *Config) { c.Inbound.MaxRetryInterval = time.Second }, "network.inbound"},
		{"wildcard server", func(c *Config) { c.Federation.AllowedServers = []string{"*.hospital.example"} }, "network.federation.allowed_servers[0] is \"*.hospital.example\": list each server by name"},
		{"user id as server", func(c *Config) { c.Federation.AllowedServers = []string{"hospital.example", "@dr:hospital.example"} }, "network.federation.allowed_servers[1]"},
		{"url as server", func(c *Config) { c.Federation.AllowedServers = []string{"https://hospital.example"} }, "network.federation.allowed_servers[0]"},
		{"alias as head room", func(c *Config) { c.Audit = AuditConfig{HeadRoom: "#audit:clinic.example", HeadInterval: time.Hour} }, "network.audit.head_room is \"#audit:clinic.example\": write the admin room's ID"},
		{"head room without interval", func(c *Config) { c.Audit = AuditConfig{HeadRoom: "!AbCdEf:clinic.example"} }, "network.audit.head_interval must be between 1s and 168h"},
		{"no inbound workers", func(c *Config) { c.Inbound.Concurrency = 0 }, "network.inbound.concurrency is 0: use 1 to 64"},
		{"fallback with a fragment", func(c *Config) { c.Twilio.FallbackURL = "https://sms2.clinic.example/#rc=5" }, "network.twilio.fallback_url"},
		{"catch-up every second", func(c *Config) { c.Inbound.CatchUpInterval = time.Second }, "network.inbound.catch_up_interval"},
		{"too many inbound workers", func(c *Config) { c.Inbound.Concurrency = 65 }, "network.inbound.concurrency is 65"},
		{"no outbox workers", func(c *Config) { c.Outbox.Concurrency = 0 }, "network.outbox.concurrency is 0: use 1 to 256"},
		{"outbox retry backwards", func(c *Config) { c.Outbox.MaxRetryInterval = time.Millisecond }, "network.outbox"},
		{"no outbox attempts", func(c *Config) { c.Outbox.MaxAttempts = 0 }, "network.outbox.max_attempts is 0"},
		{"metrics without port", func(c *Config) { c.Metrics.Listen = "127.0.0.1" }, "network.metrics.listen is \"127.0.0.1\": write host:port"},
		{"metrics port out of range", func(c *Config) { c.Metrics.Listen = ":70000" }, "network.metrics.listen is \":70000\": the port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	cfg := validConfig()
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "US", cfg.DefaultRegion, "region is normalised to upper case")
	for _, listen := range []string{"", "127.0.0.1:9100", ":9100", "[::1]:9100"} {
		cfg.Metrics.Listen = listen
		assert.NoError(t, cfg.Validate(), listen)
	}
}

func TestHardenBaseExample(t *testing.T) {
	out, err := HardenBaseExample(mxmain.MatrixExampleConfigBase)
	require.NoError(t, err)
	for _, want := range []string{"    allow: true\n", "    default: true\n", "    require: true\n",
		"        enabled: true\n", "portal_event_buffer: 64", "deduplicate_matrix_messages: true", "message_status_events: false", "message_error_notices: false", "\"*\": block", "type: sqlite3-fk-wal"} {
		assert.Contains(t, out, want)
	}
	assert.Contains(t, out, `m.text: "{{ .Sender.DisambiguatedName }}: {{ .Message }}"`)
	_, err = HardenBaseExample("bridge: {}\n")
	assert.ErrorContains(t, err, "mautrix example config changed")
}

func TestFullExampleIsValidYAMLWithHardenedDefaults(t *testing.T) {
	full, err := FullExample(mxmain.MatrixExampleConfigBase, ExampleConfig, map[string]any{
		"NetworkID": "sms", "DisplayName": "carebridge SMS", "DefaultPort": 29340, "DefaultCommandPrefix": "!sms",
	})
	require.NoError(t, err)
	var parsed struct {
		Network    Config `yaml:"network"`
		Encryption struct {
			Allow, Default, Require bool
		} `yaml:"encryption"`
		Bridge struct {
			CommandPrefix string `yaml:"command_prefix"`
			Relay         struct {
				Enabled bool `yaml:"enabled"`
			} `yaml:"relay"`
		} `yaml:"bridge"`
		AppService struct {
			UsernameTemplate string `yaml:"username_template"`
		} `yaml:"appservice"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(full), &parsed))
	assert.Equal(t, "Example Clinic", parsed.Network.ClinicName)
	assert.True(t, parsed.Encryption.Allow && parsed.Encryption.Default && parsed.Encryption.Require)
	assert.True(t, parsed.Bridge.Relay.Enabled)
	assert.Equal(t, "!sms", parsed.Bridge.CommandPrefix)
	assert.Equal(t, "sms_{{.}}", parsed.AppService.UsernameTemplate)
}

func TestSecureChatKeyFromEnvironment(t *testing.T) {
	t.Run("old variable supplies k1 of an old config", func(t *testing.T) {
		cfg := validConfig()
		cfg.SecureChat.Keys, cfg.SecureChat.CurrentKey, cfg.SecureChat.EncryptionKey = nil, "", "generate"
		t.Setenv(EncryptionKeyEnv, testKey2)
		require.NoError(t, cfg.Validate())
		current, keys, err := cfg.SecureChat.KeyMaterial()
		require.NoError(t, err)
		assert.Equal(t, "k1", current)
		assert.Equal(t, map[string][]byte{"k1": []byte("fedcba9876543210fedcba9876543210")}, keys)
	})
	t.Run("old config without the upgrader", func(t *testing.T) {
		cfg := validConfig()
		cfg.SecureChat.Keys, cfg.SecureChat.CurrentKey, cfg.SecureChat.EncryptionKey = map[string]string{"k1": "generate"}, "k1", testKey1
		current, keys, err := cfg.SecureChat.KeyMaterial()
		require.NoError(t, err, "encryption_key stands in for the example's k1")
		assert.Equal(t, "k1", current)
		assert.Equal(t, "0123456789abcdef0123456789abcdef", string(keys["k1"]))
	})
	t.Run("own variable per key", func(t *testing.T) {
		cfg := validConfig()
		cfg.SecureChat.Keys["2025-q3"] = "env"
		cfg.SecureChat.CurrentKey = "2025-q3"
		t.Setenv("CAREBRIDGE_SECURE_CHAT_KEY_2025_Q3", testKey2)
		t.Setenv(EncryptionKeyEnv, "bm90IHVzZWQgYmVjYXVzZSBrMSBoYXMgaXRzIG93bg==")
		t.Setenv("CAREBRIDGE_SECURE_CHAT_KEY_K1", "ZmVkY2JhOTg3NjU0MzIxMDAxMjM0NTY3ODlhYmNkZWY=")
		require.NoError(t, cfg.Validate())
		current, keys, err := cfg.SecureChat.KeyMaterial()
		require.NoError(t, err)
		assert.Equal(t, "2025-q3", current)
		assert.Equal(t, "fedcba9876543210fedcba9876543210", string(keys["2025-q3"]))
		assert.Equal(t, "fedcba98765432100123456789abcdef", string(keys["k1"]), "a key's own variable wins over the file and the old variable")
	})
	t.Run("bad variable is named, not the file", func(t *testing.T) {
		cfg := validConfig()
		t.Setenv("CAREBRIDGE_SECURE_CHAT_KEY_K1", "c2hvcnQ=")
		err := cfg.Validate()
		require.ErrorIs(t, err, ErrInvalidConfig)
		assert.Contains(t, err.Error(), "the environment variable CAREBRIDGE_SECURE_CHAT_KEY_K1 is 5 bytes")
		assert.NotContains(t, err.Error(), "c2hvcnQ", "a key never appears in an error")
	})
	assert.Equal(t, "CAREBRIDGE_SECURE_CHAT_KEY_K2", KeyEnv("k2"))
	assert.Equal(t, "CAREBRIDGE_SECURE_CHAT_KEY_2025_Q3", KeyEnv("2025-q3"))
	assert.Equal(t, "CAREBRIDGE_SECURE_CHAT_KEY_CLINIC_A_1", KeyEnv("clinic.a_1"))
}

// upgrade runs the network section's Upgrader over an older network section, as mxmain
// does on start, and parses the result.
func upgrade(t *testing.T, old string) (Config, string) {
	t.Helper()
	out, err := up.DoBytes([]byte(old), &up.StructUpgrader{SimpleUpgrader: Upgrader, Base: ExampleConfig})
	require.NoError(t, err)
	var cfg Config
	require.NoError(t, yaml.Unmarshal(out, &cfg))
	return cfg, string(out)
}

func TestUpgraderKeys(t *testing.T) {
	t.Run("single encryption_key becomes k1", func(t *testing.T) {
		cfg, out := upgrade(t, "clinic_name: Riverside\nsecure_chat:\n    encryption_key: "+testKey1+"\n")
		assert.Equal(t, map[string]string{"k1": testKey1}, cfg.SecureChat.Keys, "data sealed before says k1")
		assert.Equal(t, "k1", cfg.SecureChat.CurrentKey)
		assert.NotContains(t, out, "encryption_key")
		assert.Equal(t, "Riverside", cfg.ClinicName)
	})
	t.Run("encryption_key generate", func(t *testing.T) {
		cfg, _ := upgrade(t, "secure_chat:\n    encryption_key: generate\n")
		require.Len(t, cfg.SecureChat.Keys, 1)
		cfg.SecureChat.EncryptionKey = ""
		_, keys, err := cfg.SecureChat.KeyMaterial()
		require.NoError(t, err)
		assert.Len(t, keys["k1"], 32)
	})
	t.Run("federation kept", func(t *testing.T) {
		cfg, _ := upgrade(t, "federation:\n    allowed_servers: [hospital.example]\nprivacy:\n    mask_room_names: true\n")
		assert.Equal(t, []string{"hospital.example"}, cfg.Federation.AllowedServers)
		assert.True(t, cfg.Privacy.MaskRoomNames)
	})
	t.Run("staff roles kept", func(t *testing.T) {
		cfg, _ := upgrade(t, "secure_chat:\n    encryption_key: "+testKey1+"\n    pages:\n        staff_roles:\n            \"@jane:clinic.example\": Nurse\n")
		assert.Equal(t, map[string]string{"@jane:clinic.example": "Nurse"}, cfg.SecureChat.Pages.StaffRoles)
	})
	t.Run("metrics listen kept", func(t *testing.T) {
		cfg, _ := upgrade(t, "metrics:\n    listen: 127.0.0.1:9100\n    pprof: true\n")
		assert.Equal(t, "127.0.0.1:9100", cfg.Metrics.Listen)
		assert.True(t, cfg.Metrics.Pprof)
	})
	t.Run("fresh config", func(t *testing.T) {
		cfg, _ := upgrade(t, "provider: twilio\n")
		assert.Empty(t, cfg.Metrics.Listen, "metrics are off by default")
		assert.False(t, cfg.Metrics.Pprof, "the profiler is off by default")
		assert.Empty(t, cfg.Federation.AllowedServers, "rooms stay on the own server by default")
		assert.False(t, cfg.Privacy.MaskRoomNames)
		assert.Equal(t, 8, cfg.Inbound.Concurrency, "an older config gets the default")
		_, keys, err := cfg.SecureChat.KeyMaterial()
		require.NoError(t, err)
		assert.Len(t, keys["k1"], 32)
	})
	t.Run("rotation: new key generated, old kept, order kept", func(t *testing.T) {
		old := "secure_chat:\n    keys:\n        k1: " + testKey1 + "\n        k2: generate\n        k3: env\n    current_key: k2\n"
		cfg, out := upgrade(t, old)
		assert.Equal(t, "k2", cfg.SecureChat.CurrentKey)
		assert.Equal(t, testKey1, cfg.SecureChat.Keys["k1"])
		assert.Equal(t, "env", cfg.SecureChat.Keys["k3"], "a key from the environment stays there")
		k2, err := base64.StdEncoding.DecodeString(cfg.SecureChat.Keys["k2"])
		require.NoError(t, err)
		assert.Len(t, k2, 32)
		assert.Less(t, strings.Index(out, "\n        k1: "), strings.Index(out, "\n        k2: "))
		assert.Less(t, strings.Index(out, "\n        k2: "), strings.Index(out, "\n        k3: "))

		again, _ := upgrade(t, out)
		assert.Equal(t, cfg.SecureChat.Keys, again.SecureChat.Keys, "a second start changes no key")
	})
}

func TestServerHost(t *testing.T) {
	for name, want := range map[string]string{
		"hospital.example":      "hospital.example",
		"Hospital.Example:8448": "hospital.example",
		"127.0.0.2:34567":       "127.0.0.2",
		"[::1]:8448":            "::1",
		"[2001:db8::1]":         "2001:db8::1",
		"localhost":             "localhost",
	} {
		host, ok := ServerHost(name)
		assert.True(t, ok, name)
		assert.Equal(t, want, host, name)
	}
	for _, bad := range []string{"", "hospital.example:", "hospital.example:84x", "-bad.example", "a b", "dr@hospital.example", "https://hospital.example"} {
		_, ok := ServerHost(bad)
		assert.False(t, ok, bad)
	}
	f := FederationConfig{AllowedServers: []string{"b.example:8448", "A.example", "b.example"}}
	assert.Equal(t, []string{"a.example", "b.example"}, f.AllowedHosts())
	assert.True(t, IsIPLiteral("127.0.0.2"))
	assert.False(t, IsIPLiteral("hospital.example"))
}
