package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testTokenSHA = "54299faa1ddee220d8416f9a92754402d7fa70d65d32d106451a0f56109ee46b"

func TestIntegrationsValidate(t *testing.T) {
	ok := func() IntegrationConfig {
		return IntegrationConfig{Name: "ehr", TokenSHA256: testTokenSHA, Scopes: []string{ScopeConversationsRead}}
	}
	cfg := validConfig()
	cfg.Integrations = []IntegrationConfig{ok()}
	require.NoError(t, cfg.Validate())
	assert.Equal(t, DefaultRatePerMinute, cfg.Integrations[0].RateLimit.PerMinute, "defaults filled in")
	assert.Equal(t, DefaultRateBurst, cfg.Integrations[0].RateLimit.Burst)

	for name, c := range map[string]struct {
		edit func(ic *IntegrationConfig)
		want string
	}{
		"name":          {func(ic *IntegrationConfig) { ic.Name = "EHR System" }, "integrations[0].name"},
		"token":         {func(ic *IntegrationConfig) { ic.TokenSHA256 = "cbt_plain-token" }, "never the token"},
		"no scopes":     {func(ic *IntegrationConfig) { ic.Scopes = nil }, "list what the token may do"},
		"unknown scope": {func(ic *IntegrationConfig) { ic.Scopes = []string{"admin"} }, `has "admin"`},
		"number":        {func(ic *IntegrationConfig) { ic.Numbers = []string{"555-0001"} }, "E.164"},
		"rate":          {func(ic *IntegrationConfig) { ic.RateLimit.PerMinute = -1 }, "per_minute and burst"},
		"event url":     {func(ic *IntegrationConfig) { ic.Events.URL = "ftp://ehr.example/events" }, "events.url"},
		"plain http to another host": {func(ic *IntegrationConfig) {
			ic.Events.URL, ic.Events.Secret = "http://ehr.example/events", strings.Repeat("s", 40)
		}, `network.integrations[0] (ehr).events.url is "http://ehr.example/events": events carry patient numbers and messages, so they go over https`},
		"plain http to a private address": {func(ic *IntegrationConfig) {
			ic.Events.URL, ic.Events.Secret = "http://10.0.0.7:8080/events", strings.Repeat("s", 40)
		}, "plain http is allowed only to this machine"},
		"plain http to a name that starts like localhost": {func(ic *IntegrationConfig) {
			ic.Events.URL, ic.Events.Secret = "http://localhost.attacker.example/events", strings.Repeat("s", 40)
		}, "events.url"},
		"short secret": {func(ic *IntegrationConfig) {
			ic.Events.URL, ic.Events.Secret = "https://ehr.example/events", "short"
		}, "at least 32 characters"},
		"env secret unset": {func(ic *IntegrationConfig) {
			ic.Events.URL, ic.Events.Secret = "https://ehr.example/events", "env"
		}, "CAREBRIDGE_INTEGRATION_EHR_SECRET is unset"},
		"standard webhooks with a hex secret": {func(ic *IntegrationConfig) {
			ic.Events.URL, ic.Events.Secret, ic.Events.StandardWebhooks = "https://ehr.example/events", strings.Repeat("ab", 32), true
		}, "must be a Standard Webhooks secret with standard_webhooks: true: it does not start with whsec_"},
		"standard webhooks with a secret that is not base64": {func(ic *IntegrationConfig) {
			ic.Events.URL, ic.Events.Secret, ic.Events.StandardWebhooks = "https://ehr.example/events", "whsec_"+strings.Repeat("-", 40), true
		}, "not standard base64"},
		"standard webhooks with a short key": {func(ic *IntegrationConfig) {
			ic.Events.URL, ic.Events.Secret, ic.Events.StandardWebhooks = "https://ehr.example/events", "whsec_"+strings.Repeat("A", 28)+"AA==", true
		}, "its key is 22 bytes, not 24 to 64"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := validConfig()
			ic := ok()
			c.edit(&ic)
			cfg.Integrations = []IntegrationConfig{ic}
			err := cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), "cbt_plain-token", "a token pasted by mistake is not repeated")
		})
	}

	cfg = validConfig()
	other := ok()
	other.Name = "pms"
	cfg.Integrations = []IntegrationConfig{ok(), other}
	assert.ErrorContains(t, cfg.Validate(), "each integration needs its own token")

	cfg = validConfig()
	ic := ok()
	ic.Events.URL, ic.Events.Secret, ic.Events.StandardWebhooks = "https://ehr.example/events", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true
	cfg.Integrations = []IntegrationConfig{ic}
	require.NoError(t, cfg.Validate(), "a Standard Webhooks secret (24 bytes)")

	t.Setenv("CAREBRIDGE_INTEGRATION_EHR_SECRET", strings.Repeat("s", 40))
	cfg = validConfig()
	ic = ok()
	ic.Events.URL, ic.Events.Secret = "https://ehr.example/events", "env"
	cfg.Integrations = []IntegrationConfig{ic}
	require.NoError(t, cfg.Validate())
	assert.Equal(t, strings.Repeat("s", 40), cfg.Integrations[0].EventSecret())
	assert.Equal(t, 5*time.Second, cfg.Integrations[0].Events.RetryInterval)
	assert.Equal(t, time.Hour, cfg.Integrations[0].Events.MaxRetryInterval)
}

func TestIntegrationEventsOverPlainHTTPOnlyToThisMachine(t *testing.T) {
	for _, url := range []string{"https://ehr.example/events", "http://127.0.0.1:8080/events", "http://127.1.2.3/events",
		"http://[::1]:9000/events", "http://localhost:9000/events", "http://LOCALHOST/events"} {
		cfg := validConfig()
		cfg.Integrations = []IntegrationConfig{{Name: "ehr", TokenSHA256: testTokenSHA, Scopes: []string{ScopeConversationsRead},
			Events: EventsConfig{URL: url, Secret: strings.Repeat("s", 40)}}}
		assert.NoError(t, cfg.Validate(), url)
	}
	for _, url := range []string{"http://ehr.example/events", "http://192.168.1.20/events", "http://[::ffff:10.0.0.1]/events",
		"http://0.0.0.0/events", "http://127.0.0.1.nip.io/events"} {
		cfg := validConfig()
		cfg.Integrations = []IntegrationConfig{{Name: "ehr", TokenSHA256: testTokenSHA, Scopes: []string{ScopeConversationsRead},
			Events: EventsConfig{URL: url, Secret: strings.Repeat("s", 40)}}}
		err := cfg.Validate()
		assert.ErrorIs(t, err, ErrInvalidConfig, url)
		assert.ErrorContains(t, err, "network.integrations[0] (ehr).events.url", url)
	}
}
