package config

import (
	"strings"
	"time"

	up "go.mau.fi/util/configupgrade"

	"github.com/carebridge/carebridge"
)

// Config is the `network:` section of carebridge's config file.
type Config struct {
	ClinicName    string   `yaml:"clinic_name"`
	DefaultRegion string   `yaml:"default_region"`
	StaffInvites  []string `yaml:"staff_invites"`
	MaxSegments   int      `yaml:"max_segments"`

	Keywords KeywordsConfig `yaml:"keywords"`
	Twilio   TwilioConfig   `yaml:"twilio"`
	Inbound  InboundConfig  `yaml:"inbound"`
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
}

// InboundConfig tunes redelivery of patient texts into Matrix.
type InboundConfig struct {
	RetryInterval    time.Duration `yaml:"retry_interval"`
	MaxRetryInterval time.Duration `yaml:"max_retry_interval"`
}

// ExampleConfig is the commented example of the network section.
var ExampleConfig = carebridge.ExampleConfig

// Upgrader copies the network section's keys from an older config file into the current example.
var Upgrader = up.SimpleUpgrader(func(helper up.Helper) {
	helper.Copy(up.Str, "clinic_name")
	helper.Copy(up.Str, "default_region")
	helper.Copy(up.List, "staff_invites")
	helper.Copy(up.Int, "max_segments")
	helper.Copy(up.Str, "keywords", "help_text")
	helper.Copy(up.Str, "keywords", "opt_out_reply")
	helper.Copy(up.Str, "keywords", "opt_in_reply")
	helper.Copy(up.Str, "twilio", "api_url")
	helper.Copy(up.Str, "twilio", "public_url_override")
	helper.Copy(up.Str, "twilio", "request_timeout")
	helper.Copy(up.Str, "twilio", "media_url_lifetime")
	helper.Copy(up.Str, "inbound", "retry_interval")
	helper.Copy(up.Str, "inbound", "max_retry_interval")
})
