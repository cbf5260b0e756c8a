package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Integration API scopes: what an integration's token may do.
const (
	ScopeConversationsWrite = "conversations:write"
	ScopeMessagesWrite      = "messages:write"
	ScopeConversationsRead  = "conversations:read"
)

// Scopes are every scope an integration can be given.
var Scopes = []string{ScopeConversationsWrite, ScopeMessagesWrite, ScopeConversationsRead}

// IntegrationConfig is one system (an EHR, a practice-management system) that uses the
// integration API with its own bearer token. Only the token's SHA-256 is configured.
type IntegrationConfig struct {
	Name string `yaml:"name"`
	// TokenSHA256 is the hex SHA-256 of the bearer token (`carebridge api-token` makes both).
	TokenSHA256 string   `yaml:"token_sha256"`
	Scopes      []string `yaml:"scopes"`
	// Numbers are the clinic numbers (E.164) the integration may use; empty: every number.
	Numbers []string `yaml:"numbers"`
	// RateLimit is the token's allowance: requests per minute, and the burst above it.
	RateLimit RateLimitConfig `yaml:"rate_limit"`
	Events    EventsConfig    `yaml:"events"`
}

// RateLimitConfig is a token bucket: PerMinute requests a minute on average, Burst at once.
type RateLimitConfig struct {
	PerMinute int `yaml:"per_minute"`
	Burst     int `yaml:"burst"`
}

// EventsConfig is where an integration receives events (patient replied, message read,
// opted out, conversation closed), signed with HMAC-SHA256 under Secret.
type EventsConfig struct {
	URL string `yaml:"url"`
	// Secret is the HMAC key; "env" reads it from CAREBRIDGE_INTEGRATION_<NAME>_SECRET.
	Secret string `yaml:"secret"`
	// IncludeBodies puts the patient's message text into "patient replied" events.
	IncludeBodies bool `yaml:"include_bodies"`
	// StandardWebhooks signs each delivery the Standard Webhooks way too (webhook-id,
	// webhook-timestamp, webhook-signature), beside Carebridge-Signature; Secret must then
	// be a Standard Webhooks secret (whsec_ and base64), which receivers use as it is.
	StandardWebhooks bool `yaml:"standard_webhooks"`
	// RetryInterval is the first wait after a failed delivery; it doubles up to MaxRetryInterval.
	RetryInterval    time.Duration `yaml:"retry_interval"`
	MaxRetryInterval time.Duration `yaml:"max_retry_interval"`
}

// An integration's rate limit unless its config says otherwise.
const (
	DefaultRatePerMinute = 120
	DefaultRateBurst     = 20
)

// IntegrationSecretFromEnv in events.secret says the secret comes from the environment.
const IntegrationSecretFromEnv = "env"

var integrationName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// SecretEnv is the environment variable that holds an integration's event secret.
func (ic *IntegrationConfig) SecretEnv() string {
	return "CAREBRIDGE_INTEGRATION_" + strings.ToUpper(strings.ReplaceAll(ic.Name, "-", "_")) + "_SECRET"
}

// EventSecret is the HMAC key for the integration's events, from the file or the environment.
func (ic *IntegrationConfig) EventSecret() string {
	if ic.Events.Secret == IntegrationSecretFromEnv {
		return os.Getenv(ic.SecretEnv())
	}
	return ic.Events.Secret
}

// HasScope says whether the integration's token carries scope.
func (ic *IntegrationConfig) HasScope(scope string) bool { return slices.Contains(ic.Scopes, scope) }

// AllowsNumber says whether the integration may use the clinic number (E.164).
func (ic *IntegrationConfig) AllowsNumber(number string) bool {
	return len(ic.Numbers) == 0 || slices.Contains(ic.Numbers, number)
}

// ValidateIntegrations checks network.integrations (and fills in their defaults).
func (c *Config) ValidateIntegrations() error {
	seenName := map[string]bool{}
	seenToken := map[string]bool{}
	for i := range c.Integrations {
		ic := &c.Integrations[i]
		key := fmt.Sprintf("integrations[%d]", i)
		if !integrationName.MatchString(ic.Name) {
			return invalid(key+".name", fmt.Sprintf("is %q: use 1-32 lower-case letters, digits, - or _ (it names the integration in the audit log)", ic.Name))
		}
		key = fmt.Sprintf("integrations[%d] (%s)", i, ic.Name)
		if seenName[ic.Name] {
			return invalid(key+".name", "is used twice: give each integration its own name")
		}
		seenName[ic.Name] = true
		ic.TokenSHA256 = strings.ToLower(strings.TrimSpace(ic.TokenSHA256))
		if raw, err := hex.DecodeString(ic.TokenSHA256); err != nil || len(raw) != 32 {
			return invalid(key+".token_sha256", "must be the 64 hex digits `carebridge api-token` prints (the SHA-256 of the token, never the token)")
		}
		if seenToken[ic.TokenSHA256] {
			return invalid(key+".token_sha256", "is another integration's: each integration needs its own token")
		}
		seenToken[ic.TokenSHA256] = true
		if len(ic.Scopes) == 0 {
			return invalid(key+".scopes", "is empty: list what the token may do: "+strings.Join(Scopes, ", "))
		}
		for _, s := range ic.Scopes {
			if !slices.Contains(Scopes, s) {
				return invalid(key+".scopes", fmt.Sprintf("has %q: the scopes are %s", s, strings.Join(Scopes, ", ")))
			}
		}
		for _, n := range ic.Numbers {
			if !e164.MatchString(n) {
				return invalid(key+".numbers", fmt.Sprintf("has %q: write clinic numbers in E.164 form such as +15550001111", n))
			}
		}
		// List items get no defaults from the example config: zero means the default.
		if ic.RateLimit.PerMinute == 0 {
			ic.RateLimit.PerMinute = DefaultRatePerMinute
		}
		if ic.RateLimit.Burst == 0 {
			ic.RateLimit.Burst = DefaultRateBurst
		}
		if ic.RateLimit.PerMinute < 1 || ic.RateLimit.Burst < 1 {
			return invalid(key+".rate_limit", "needs per_minute and burst of at least 1 (e.g. 120 and 20)")
		}
		if err := ic.Events.validate(key, ic); err != nil {
			return err
		}
	}
	return nil
}

// checkStandardWebhookSecret: a Standard Webhooks secret is "whsec_" and its key in
// standard base64, 24 to 64 bytes (the specification's bounds).
func checkStandardWebhookSecret(secret string) error {
	encoded, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return errors.New("it does not start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return errors.New("what follows whsec_ is not standard base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return fmt.Errorf("its key is %d bytes, not 24 to 64", len(key))
	}
	return nil
}

var e164 = regexp.MustCompile(`^\+[1-9]\d{6,14}$`)

func (e *EventsConfig) validate(key string, ic *IntegrationConfig) error {
	if e.URL == "" {
		return nil
	}
	u, err := url.Parse(e.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return invalid(key+".events.url", fmt.Sprintf("is %q: give the https URL that receives the events, or leave it empty", e.URL))
	}
	// Events carry patient numbers and, with include_bodies, message texts.
	if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
		return invalid(key+".events.url", fmt.Sprintf("is %q: events carry patient numbers and messages, so they go over https; "+
			"plain http is allowed only to this machine (localhost, 127.0.0.0/8, ::1)", e.URL))
	}
	if e.Secret == IntegrationSecretFromEnv {
		if len(os.Getenv(ic.SecretEnv())) < 32 {
			return invalid(key+".events.secret", "is env, but "+ic.SecretEnv()+" is unset or shorter than 32 characters")
		}
	} else if len(e.Secret) < 32 {
		return invalid(key+".events.secret", "must be at least 32 characters (e.g. `openssl rand -hex 32`), or env to read "+ic.SecretEnv())
	}
	if e.StandardWebhooks {
		if err := checkStandardWebhookSecret(ic.EventSecret()); err != nil {
			return invalid(key+".events.secret", "must be a Standard Webhooks secret with standard_webhooks: true: "+err.Error()+
				" (make one with `echo whsec_$(openssl rand -base64 32)`; receivers verify with the same string)")
		}
	}
	if e.RetryInterval == 0 {
		e.RetryInterval = 5 * time.Second
	}
	if e.MaxRetryInterval == 0 {
		e.MaxRetryInterval = max(time.Hour, e.RetryInterval)
	}
	if e.RetryInterval <= 0 || e.MaxRetryInterval < e.RetryInterval {
		return invalid(key+".events", "retry_interval must be positive and max_retry_interval at least as long (e.g. 5s and 1h)")
	}
	return nil
}

// IsLoopbackHost says whether a URL's host name is this machine: localhost, an address
// in 127.0.0.0/8, or ::1.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
