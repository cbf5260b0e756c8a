package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/bridgev2/matrix/mxmain"
)

func validConfig() Config {
	return Config{
		Provider:      ProviderTwilio,
		ClinicName:    "Riverside Family Clinic",
		DefaultRegion: "us",
		StaffInvites:  []string{"@nurse.kim:clinic.example"},
		MaxSegments:   10,
		SecureChat: SecureChatConfig{DefaultMode: "sms", EncryptionKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
			LinkLifetime: 72 * time.Hour, CodeLifetime: 10 * time.Minute, MaxWrongCodes: 5, CodesPerHour: 5,
			SessionIdle: 15 * time.Minute, SessionMax: 12 * time.Hour, AlertQuietPeriod: 15 * time.Minute,
			Language: "en", MaxUploadMB: 20, RetentionDays: 30},
		Keywords: KeywordsConfig{HelpText: "{clinic_name}: reply STOP to opt out.", OptOutReply: "Unsubscribed.", OptInReply: "Subscribed."},
		Twilio:   TwilioConfig{RequestTimeout: 15 * time.Second, MediaURLLifetime: time.Hour},
		Inbound:  InboundConfig{RetryInterval: 5 * time.Second, MaxRetryInterval: time.Minute},
	}
}

func TestExampleConfigParsesAndValidates(t *testing.T) {
	var cfg Config
	require.NoError(t, yaml.Unmarshal([]byte(ExampleConfig), &cfg))
	assert.Equal(t, "generate", cfg.SecureChat.EncryptionKey, "the example asks for a generated key")
	cfg.SecureChat.EncryptionKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "Example Clinic", cfg.ClinicName)
	assert.Equal(t, 15*time.Second, cfg.Twilio.RequestTimeout)
	assert.Equal(t, 5*time.Minute, cfg.Inbound.MaxRetryInterval)
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
		{"short key", func(c *Config) { c.SecureChat.EncryptionKey = "c2hvcnQ=" }, "must be 32 bytes in base64"},
		{"ungenerated key", func(c *Config) { c.SecureChat.EncryptionKey = "generate" }, "must be 32 bytes in base64"},
		{"zero timeout", func(c *Config) { c.Twilio.RequestTimeout = 0 }, "network.twilio.request_timeout"},
		{"retry backwards", func(c *Config) { c.Inbound.MaxRetryInterval = time.Second }, "network.inbound"},
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
}

func TestHardenBaseExample(t *testing.T) {
	out, err := HardenBaseExample(mxmain.MatrixExampleConfigBase)
	require.NoError(t, err)
	for _, want := range []string{"    allow: true\n", "    default: true\n", "    require: true\n",
		"        enabled: true\n", "portal_event_buffer: 0", "message_status_events: true", "\"*\": block", "type: sqlite3-fk-wal"} {
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
	cfg := validConfig()
	cfg.SecureChat.EncryptionKey = "generate"
	t.Setenv(EncryptionKeyEnv, "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=")
	require.NoError(t, cfg.Validate())
	key, err := cfg.SecureChat.Key()
	require.NoError(t, err)
	assert.Equal(t, "fedcba9876543210fedcba9876543210", string(key))
}
