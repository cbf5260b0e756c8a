package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"maunium.net/go/mautrix/id"
)

// ErrInvalidConfig wraps every validation failure of the network section.
var ErrInvalidConfig = errors.New("invalid carebridge config")

func invalid(key, problem string) error {
	return fmt.Errorf("%w: network.%s %s", ErrInvalidConfig, key, problem)
}

// Validate checks the network section and names the key and the fix for the first problem.
func (c *Config) Validate() error {
	if c.Provider != ProviderTwilio && c.Provider != ProviderSimulator {
		return invalid("provider", fmt.Sprintf("is %q: use twilio, or simulator for a demo without real SMS", c.Provider))
	}
	if strings.TrimSpace(c.ClinicName) == "" {
		return invalid("clinic_name", "is empty: set it to the clinic's name as patients know it")
	}
	if _, ok := phonenumbers.GetSupportedRegions()[strings.ToUpper(c.DefaultRegion)]; !ok {
		return invalid("default_region", fmt.Sprintf("is %q: use a two-letter region code such as US, CA or GB", c.DefaultRegion))
	}
	c.DefaultRegion = strings.ToUpper(c.DefaultRegion)
	for i, mxid := range c.StaffInvites {
		if localpart, _, err := id.UserID(mxid).ParseAndValidateRelaxed(); err != nil || localpart == "" {
			return invalid(fmt.Sprintf("staff_invites[%d]", i), fmt.Sprintf("is %q: write a full Matrix ID such as @nurse:clinic.example", mxid))
		}
	}
	if c.MaxSegments < 1 || c.MaxSegments > 10 {
		return invalid("max_segments", fmt.Sprintf("is %d: use 1 to 10 (Twilio sends at most 1,600 characters)", c.MaxSegments))
	}
	for key, text := range map[string]string{
		"keywords.help_text": c.Keywords.HelpText, "keywords.opt_out_reply": c.Keywords.OptOutReply,
		"keywords.opt_in_reply": c.Keywords.OptInReply,
	} {
		if strings.TrimSpace(text) == "" {
			return invalid(key, "is empty: carriers require an answer to this keyword")
		} else if len(c.Render(text)) > 320 {
			return invalid(key, "is longer than 320 characters: keep keyword answers to one or two SMS")
		}
	}
	if err := c.WorkflowConfig.validate(); err != nil {
		return err
	}
	if err := c.SecureChat.validate(); err != nil {
		return err
	}
	if err := checkBaseURL(c.Twilio.APIURL); err != nil {
		return invalid("twilio.api_url", err.Error()+": leave it empty for the real Twilio API")
	}
	if err := checkBaseURL(c.Twilio.PublicURLOverride); err != nil {
		return invalid("twilio.public_url_override", err.Error()+": give the public https URL Twilio calls, or leave it empty")
	}
	if err := checkBaseURL(c.Twilio.FallbackURL); err != nil {
		return invalid("twilio.fallback_url", err.Error()+": give the public https URL of the second instance, or leave it empty")
	}
	if c.Twilio.RequestTimeout <= 0 {
		return invalid("twilio.request_timeout", "must be a positive duration such as 15s")
	}
	if c.Twilio.MediaURLLifetime < time.Second || c.Twilio.MediaURLLifetime > 7*24*time.Hour {
		return invalid("twilio.media_url_lifetime", "must be between 1s and 168h (default 1h)")
	}
	if c.Inbound.RetryInterval <= 0 || c.Inbound.MaxRetryInterval < c.Inbound.RetryInterval {
		return invalid("inbound", "retry_interval must be positive and max_retry_interval at least as long (e.g. 5s and 5m)")
	}
	if c.Inbound.CatchUpInterval < time.Minute || c.Inbound.CatchUpInterval > 24*time.Hour {
		return invalid("inbound.catch_up_interval", "must be between 1m and 24h (default 10m)")
	}
	if c.Inbound.Concurrency < 1 || c.Inbound.Concurrency > 64 {
		return invalid("inbound.concurrency", fmt.Sprintf("is %d: use 1 to 64 (8 by default)", c.Inbound.Concurrency))
	}
	if c.Outbox.Concurrency < 1 || c.Outbox.Concurrency > 256 {
		return invalid("outbox.concurrency", fmt.Sprintf("is %d: use 1 to 256 (16 by default)", c.Outbox.Concurrency))
	}
	if c.Outbox.RetryInterval <= 0 || c.Outbox.MaxRetryInterval < c.Outbox.RetryInterval {
		return invalid("outbox", "retry_interval must be positive and max_retry_interval at least as long (e.g. 1s and 1m)")
	}
	if c.Outbox.MaxAttempts < 1 || c.Outbox.MaxAttempts > 100 {
		return invalid("outbox.max_attempts", fmt.Sprintf("is %d: use 1 to 100 (8 by default)", c.Outbox.MaxAttempts))
	}
	if c.Outbox.PerNumberRate < 0 || c.Outbox.PerNumberRate > 1000 {
		return invalid("outbox.per_number_rate", fmt.Sprintf("is %g: use 0 (no limit) to 1000 texts a second", c.Outbox.PerNumberRate))
	}
	if err := checkListen(c.Metrics.Listen); err != nil {
		return invalid("metrics.listen", err.Error())
	}
	if err := c.Federation.validate(); err != nil {
		return err
	}
	if err := c.Audit.validate(); err != nil {
		return err
	}
	return c.ValidateIntegrations()
}

// checkListen accepts an empty address (listener off) or host:port.
func checkListen(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("is %q: write host:port such as 127.0.0.1:9100, or leave it empty to turn metrics off", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("is %q: the port must be a number from 1 to 65535", addr)
	}
	return nil
}

func checkBaseURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("is %q, not an absolute http(s) URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("is %q: it must not have a query or fragment", raw)
	}
	return nil
}

func (s *SecureChatConfig) validate() error {
	switch {
	case s.DefaultMode != "sms" && s.DefaultMode != "secure":
		return invalid("secure_chat.default_mode", fmt.Sprintf("is %q: use sms or secure", s.DefaultMode))
	case s.LinkLifetime < time.Hour || s.LinkLifetime > 30*24*time.Hour:
		return invalid("secure_chat.link_lifetime", "must be between 1h and 720h (default 72h)")
	case s.CodeLifetime < time.Minute || s.CodeLifetime > 10*time.Minute:
		return invalid("secure_chat.code_lifetime", "must be between 1m and 10m (NIST SP 800-63B allows 10 minutes at most)")
	case s.MaxWrongCodes < 1 || s.MaxWrongCodes > 10:
		return invalid("secure_chat.max_wrong_codes", "must be between 1 and 10 (default 5)")
	case s.CodesPerHour < 1 || s.CodesPerHour > 20:
		return invalid("secure_chat.codes_per_hour", "must be between 1 and 20 (default 5)")
	case s.SessionIdle < time.Minute || s.SessionIdle > time.Hour:
		return invalid("secure_chat.session_idle", "must be between 1m and 1h (default 15m)")
	case s.SessionMax < s.SessionIdle || s.SessionMax > 24*time.Hour:
		return invalid("secure_chat.session_max", "must be at least session_idle and at most 24h (default 12h)")
	case s.AlertQuietPeriod < 0 || s.AlertQuietPeriod > 24*time.Hour:
		return invalid("secure_chat.alert_quiet_period", "must be between 0 and 24h (default 15m)")
	case s.ReminderAfter < 0 || (s.ReminderAfter > 0 && s.ReminderAfter < s.AlertQuietPeriod) || s.ReminderAfter > 30*24*time.Hour:
		return invalid("secure_chat.reminder_after", "must be 0 (no reminder) or between alert_quiet_period and 720h (default 24h)")
	case s.Language != "en" && s.Language != "es":
		return invalid("secure_chat.language", fmt.Sprintf("is %q: use en or es", s.Language))
	case s.MaxUploadMB < 1 || s.MaxUploadMB > 100:
		return invalid("secure_chat.max_upload_mb", "must be between 1 and 100 (default 20)")
	case s.RetentionDays < 1 || s.RetentionDays > 3650:
		return invalid("secure_chat.retention_days", "must be between 1 and 3650 (default 30)")
	}
	if _, _, err := s.KeyMaterial(); err != nil {
		return err
	}
	return s.Pages.validate()
}

func (p *PagesConfig) validate() error {
	if p.ClinicPhone != "" && !e164.MatchString(p.ClinicPhone) {
		return invalid("secure_chat.pages.clinic_phone", fmt.Sprintf("is %q: write the number in E.164 form such as +15550001111, or leave it empty", p.ClinicPhone))
	}
	for key, raw := range map[string]string{"help_url": p.HelpURL, "privacy_url": p.PrivacyURL, "accessibility_url": p.AccessibilityURL} {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return invalid("secure_chat.pages."+key, fmt.Sprintf("is %q: write an absolute https URL such as https://clinic.example/privacy, or leave it empty", raw))
		}
	}
	for userID, role := range p.StaffRoles {
		if _, _, err := id.UserID(userID).Parse(); err != nil {
			return invalid("secure_chat.pages.staff_roles", fmt.Sprintf("has %q: list staff by Matrix ID such as @jane:clinic.example", userID))
		}
		if role = strings.TrimSpace(role); role == "" || len([]rune(role)) > maxStaffRoleRunes || strings.ContainsAny(role, "\r\n") {
			return invalid("secure_chat.pages.staff_roles."+userID, fmt.Sprintf("is %q: write a role of 1 to %d characters on one line, such as Nurse", role, maxStaffRoleRunes))
		}
	}
	return nil
}

// maxStaffRoleRunes is the longest role the chat shows beside a staff member's name.
const maxStaffRoleRunes = 40
