package config

import (
	"strings"
	"time"

	up "go.mau.fi/util/configupgrade"

	"github.com/carebridge/carebridge"
)

// Config is the `network:` section of carebridge's config file.
type Config struct {
	Provider      string   `yaml:"provider"`
	ClinicName    string   `yaml:"clinic_name"`
	DefaultRegion string   `yaml:"default_region"`
	StaffInvites  []string `yaml:"staff_invites"`
	MaxSegments   int      `yaml:"max_segments"`

	SecureChat SecureChatConfig `yaml:"secure_chat"`
	Keywords   KeywordsConfig   `yaml:"keywords"`
	Twilio     TwilioConfig     `yaml:"twilio"`
	Inbound    InboundConfig    `yaml:"inbound"`
	Outbox     OutboxConfig     `yaml:"outbox"`
	Metrics    MetricsConfig    `yaml:"metrics"`
	Federation FederationConfig `yaml:"federation"`
	Privacy    PrivacyConfig    `yaml:"privacy"`
	Audit      AuditConfig      `yaml:"audit"`
	// Integrations use the REST and FHIR API (docs/api.md) and receive events.
	Integrations []IntegrationConfig `yaml:"integrations"`
	// Unsafe overrides start-up refusals (CheckStart).
	Unsafe UnsafeConfig `yaml:"unsafe"`

	WorkflowConfig `yaml:",inline"`
}

// SecureChatConfig configures secure mode and the patient web chat.
type SecureChatConfig struct {
	DefaultMode string `yaml:"default_mode"`
	// Keys maps a key ID to a 32-byte key in base64 (see KeyMaterial for "generate", "env"
	// and the environment variables); CurrentKey names the one new data is sealed with.
	Keys       map[string]string `yaml:"keys"`
	CurrentKey string            `yaml:"current_key"`
	// EncryptionKey is the single key of configs written before key rotation existed. The
	// Upgrader moves it to keys.k1; a config that bypasses the Upgrader still reads it as k1.
	EncryptionKey    string        `yaml:"encryption_key,omitempty"`
	LinkLifetime     time.Duration `yaml:"link_lifetime"`
	CodeLifetime     time.Duration `yaml:"code_lifetime"`
	MaxWrongCodes    int           `yaml:"max_wrong_codes"`
	CodesPerHour     int           `yaml:"codes_per_hour"`
	SessionIdle      time.Duration `yaml:"session_idle"`
	SessionMax       time.Duration `yaml:"session_max"`
	AlertQuietPeriod time.Duration `yaml:"alert_quiet_period"`
	// ReminderAfter is when messages still unread after their alert get one reminder (0: never).
	ReminderAfter time.Duration `yaml:"reminder_after"`
	Language      string        `yaml:"language"`
	MaxUploadMB   int           `yaml:"max_upload_mb"`
	RetentionDays int           `yaml:"retention_days"`
	Pages         PagesConfig   `yaml:"pages"`
}

// PagesConfig is what the patient pages show beyond the conversation; every option may
// be left empty.
type PagesConfig struct {
	// ClinicPhone (E.164) is the number patients text for a new link, offered where a page
	// knows no conversation (an unknown link, signed out); a page that knows one shows the
	// conversation's clinic number instead.
	ClinicPhone string `yaml:"clinic_phone"`
	// HelpURL, PrivacyURL and AccessibilityURL are the clinic's own pages, linked from
	// every page's footer.
	HelpURL          string `yaml:"help_url"`
	PrivacyURL       string `yaml:"privacy_url"`
	AccessibilityURL string `yaml:"accessibility_url"`
	// StaffRoles gives staff members' roles by Matrix ID ("@jane:clinic.example": "Nurse"):
	// the chat shows who wrote as "Jane, Nurse — Riverside Clinic" (name from the Matrix
	// profile); staff not listed show as "Jane — Riverside Clinic".
	StaffRoles map[string]string `yaml:"staff_roles"`
}

// KeywordsConfig holds the fixed answers to carrier keywords.
type KeywordsConfig struct {
	HelpText    string `yaml:"help_text"`
	OptOutReply string `yaml:"opt_out_reply"`
	OptInReply  string `yaml:"opt_in_reply"`
}

// Render fills a fixed answer's {clinic_name} placeholder.
func (c *Config) Render(template string) string {
	return strings.ReplaceAll(template, "{clinic_name}", c.ClinicName)
}

// TwilioConfig says where the Twilio API is and which URL Twilio signs.
type TwilioConfig struct {
	APIURL            string        `yaml:"api_url"`
	PublicURLOverride string        `yaml:"public_url_override"`
	RequestTimeout    time.Duration `yaml:"request_timeout"`
	MediaURLLifetime  time.Duration `yaml:"media_url_lifetime"`
	// FallbackURL is the public base URL of a second carebridge instance on the same
	// database; a clinic number's SmsFallbackUrl points there (empty: no fallback).
	FallbackURL string `yaml:"fallback_url"`
}

// InboundConfig tunes redelivery of patient texts into Matrix.
type InboundConfig struct {
	RetryInterval    time.Duration `yaml:"retry_interval"`
	MaxRetryInterval time.Duration `yaml:"max_retry_interval"`
	// Concurrency is how many conversations receive texts at once; each conversation's
	// texts still arrive one at a time, in order.
	Concurrency int `yaml:"concurrency"`
	// CatchUpInterval is how often Twilio's message log is read for texts whose webhook
	// never reached the bridge, besides at start and after a gap the bridge saw.
	CatchUpInterval time.Duration `yaml:"catch_up_interval"`
}

// OutboxConfig tunes how texts to patients are sent: every text is stored first, then
// sent by a pool of workers, one conversation's texts in order.
type OutboxConfig struct {
	// Concurrency is how many conversations' texts are at Twilio at once.
	Concurrency int `yaml:"concurrency"`
	// RetryInterval is the first wait before a text Twilio certainly did not accept is sent
	// again; later waits double up to MaxRetryInterval, with jitter.
	RetryInterval    time.Duration `yaml:"retry_interval"`
	MaxRetryInterval time.Duration `yaml:"max_retry_interval"`
	// MaxAttempts is how often a text is tried before staff are told it was not sent.
	MaxAttempts int `yaml:"max_attempts"`
	// PerNumberRate is how many queued texts a second one clinic number sends at most
	// (0: as fast as Twilio answers). One-time codes are not held back by it.
	PerNumberRate float64 `yaml:"per_number_rate"`
}

// MetricsConfig configures the separate listener for Prometheus metrics and health checks.
type MetricsConfig struct {
	// Listen is host:port for /metrics, /healthz and /readyz; empty turns the listener off.
	Listen string `yaml:"listen"`
	// Pprof also serves Go's profiler under /debug/pprof/ on that listener.
	Pprof bool `yaml:"pprof"`
}

// Providers of the network.provider option.
const (
	ProviderTwilio    = "twilio"
	ProviderSimulator = "simulator"
)

// ExampleConfig is the commented example of the network section.
var ExampleConfig = carebridge.ExampleConfig

// Upgrader copies the network section's keys from an older config file into the current example.
var Upgrader = up.SimpleUpgrader(func(helper up.Helper) {
	helper.Copy(up.Str, "provider")
	helper.Copy(up.Str, "clinic_name")
	helper.Copy(up.Str, "default_region")
	helper.Copy(up.List, "staff_invites")
	helper.Copy(up.Int, "max_segments")
	upgradeKeys(helper)
	helper.Copy(up.Str, "secure_chat", "default_mode")
	helper.Copy(up.Str, "secure_chat", "link_lifetime")
	helper.Copy(up.Str, "secure_chat", "code_lifetime")
	helper.Copy(up.Int, "secure_chat", "max_wrong_codes")
	helper.Copy(up.Int, "secure_chat", "codes_per_hour")
	helper.Copy(up.Str, "secure_chat", "session_idle")
	helper.Copy(up.Str, "secure_chat", "session_max")
	helper.Copy(up.Str, "secure_chat", "alert_quiet_period")
	helper.Copy(up.Str, "secure_chat", "reminder_after")
	helper.Copy(up.Str, "secure_chat", "language")
	helper.Copy(up.Int, "secure_chat", "max_upload_mb")
	helper.Copy(up.Int, "secure_chat", "retention_days")
	helper.Copy(up.Str, "secure_chat", "pages", "clinic_phone")
	helper.Copy(up.Str, "secure_chat", "pages", "help_url")
	helper.Copy(up.Str, "secure_chat", "pages", "privacy_url")
	helper.Copy(up.Str, "secure_chat", "pages", "accessibility_url")
	helper.Copy(up.Map, "secure_chat", "pages", "staff_roles")
	helper.Copy(up.Str, "keywords", "help_text")
	helper.Copy(up.Str, "keywords", "opt_out_reply")
	helper.Copy(up.Str, "keywords", "opt_in_reply")
	helper.Copy(up.Str, "twilio", "api_url")
	helper.Copy(up.Str, "twilio", "public_url_override")
	helper.Copy(up.Str, "twilio", "request_timeout")
	helper.Copy(up.Str, "twilio", "media_url_lifetime")
	helper.Copy(up.Str, "twilio", "fallback_url")
	helper.Copy(up.Str, "inbound", "retry_interval")
	helper.Copy(up.Str, "inbound", "max_retry_interval")
	helper.Copy(up.Int, "inbound", "concurrency")
	helper.Copy(up.Str, "inbound", "catch_up_interval")
	helper.Copy(up.Int, "outbox", "concurrency")
	helper.Copy(up.Str, "outbox", "retry_interval")
	helper.Copy(up.Str, "outbox", "max_retry_interval")
	helper.Copy(up.Int, "outbox", "max_attempts")
	helper.Copy(up.Float|up.Int, "outbox", "per_number_rate")
	helper.Copy(up.Str|up.Null, "metrics", "listen")
	helper.Copy(up.Bool, "metrics", "pprof")
	helper.Copy(up.List, "federation", "allowed_servers")
	helper.Copy(up.Bool, "privacy", "mask_room_names")
	helper.Copy(up.Str, "audit", "head_room")
	helper.Copy(up.Str, "audit", "head_interval")
	helper.Copy(up.Bool, "unsafe", "simulator_on_public_address")
	helper.Copy(up.Bool, "unsafe", "unencrypted_rooms")
	helper.Copy(up.List, "teams")
	helper.Copy(up.List, "on_call")
	helper.Copy(up.Str, "emergency", "reply")
	helper.Copy(up.List, "emergency", "phrases")
	helper.Copy(up.Str, "business_hours", "time_zone")
	helper.Copy(up.Map, "business_hours", "weekly")
	helper.Copy(up.List, "business_hours", "holidays")
	helper.Copy(up.Str, "business_hours", "after_hours_reply")
	helper.Copy(up.Map, "templates")
	helper.Copy(up.List, "integrations")
})
