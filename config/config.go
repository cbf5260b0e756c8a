package config

import (
	"time"

	up "go.mau.fi/util/configupgrade"

	"github.com/carebridge/carebridge"
)

// Config is the `network:` section of carebridge's config file.
type Config struct {
	ClinicName    string   `yaml:"clinic_name"`
	DefaultRegion string   `yaml:"default_region"`
	StaffInvites  []string `yaml:"staff_invites"`

	Twilio  TwilioConfig  `yaml:"twilio"`
	Inbound InboundConfig `yaml:"inbound"`
}

// TwilioConfig says where the Twilio API is and which URL Twilio signs.
type TwilioConfig struct {
	APIURL            string        `yaml:"api_url"`
	PublicURLOverride string        `yaml:"public_url_override"`
	RequestTimeout    time.Duration `yaml:"request_timeout"`
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
	helper.Copy(up.Str, "twilio", "api_url")
	helper.Copy(up.Str, "twilio", "public_url_override")
	helper.Copy(up.Str, "twilio", "request_timeout")
	helper.Copy(up.Str, "inbound", "retry_interval")
	helper.Copy(up.Str, "inbound", "max_retry_interval")
})
