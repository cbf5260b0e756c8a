package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// UnsafeConfig turns off a refusal to start, knowingly. Each override in force is logged
// as an error at every start.
type UnsafeConfig struct {
	// SimulatorOnPublicAddress runs provider simulator on an address other machines reach.
	SimulatorOnPublicAddress bool `yaml:"simulator_on_public_address"`
	// UnencryptedRooms runs without encryption.default and encryption.require.
	UnencryptedRooms bool `yaml:"unencrypted_rooms"`
}

// ErrUnsafeStart wraps every refusal of CheckStart.
var ErrUnsafeStart = errors.New("unsafe carebridge config")

// StartSettings are the parts of the bridgev2 config (outside the network section) that
// CheckStart looks at.
type StartSettings struct {
	ListenHost        string // appservice.hostname
	PublicAddress     string // appservice.public_address
	EncryptionDefault bool   // encryption.default
	EncryptionRequire bool   // encryption.require
}

// CheckStart refuses a config that would expose patients, naming the keys to set: the
// simulator reachable from other machines (it sends no real SMS, and its phone page shows
// every simulated patient's texts, links and codes to whoever opens it and lets them text
// as any patient), or rooms that need not be encrypted. It returns a warning for each
// network.unsafe override that is in force.
func (c *Config) CheckStart(s StartSettings) (warnings []string, err error) {
	if c.Provider == ProviderSimulator {
		if where, address := c.simulatorExposed(s); where != "" {
			if !c.Unsafe.SimulatorOnPublicAddress {
				return nil, fmt.Errorf("%w: network.provider is simulator, but %s is %q, not this machine (localhost, "+
					"127.0.0.0/8 or ::1): the simulator sends no real SMS, and its phone page shows every simulated "+
					"patient's texts, links and codes to anyone who reaches it and lets them text as any patient. Use "+
					"network.provider: twilio for real patients; for a demo, set %s to a loopback address, or set "+
					"network.unsafe.simulator_on_public_address: true to show the demo to other machines",
					ErrUnsafeStart, where, address, where)
			}
			warnings = append(warnings, fmt.Sprintf("network.unsafe.simulator_on_public_address is true: the simulated "+
				"phone page (no real SMS, every simulated patient's texts, links and codes) is served on %s %s, "+
				"reachable from other machines. Never use it with real patients", where, address))
		}
	}
	if !s.EncryptionDefault || !s.EncryptionRequire {
		if !c.Unsafe.UnencryptedRooms {
			return nil, fmt.Errorf("%w: encryption.default and encryption.require must both be true (they are %t and %t): "+
				"otherwise conversation rooms may be created unencrypted and unencrypted messages are bridged, so patients' "+
				"texts lie in clear on the homeserver. Set both to true, or set network.unsafe.unencrypted_rooms: true to "+
				"run without them (logged at every start)", ErrUnsafeStart, s.EncryptionDefault, s.EncryptionRequire)
		}
		warnings = append(warnings, fmt.Sprintf("network.unsafe.unencrypted_rooms is true, and encryption.default is %t, "+
			"encryption.require is %t: conversation rooms may be unencrypted, and patients' texts in them are stored in "+
			"clear on the homeserver", s.EncryptionDefault, s.EncryptionRequire))
	}
	return warnings, nil
}

// simulatorExposed names the first address the simulator would be served at that is not
// this machine, with its value; "" when every one is loopback.
func (c *Config) simulatorExposed(s StartSettings) (key, value string) {
	if !isLocalListenHost(s.ListenHost) {
		return "appservice.hostname", s.ListenHost
	}
	if !isLoopbackURL(s.PublicAddress) {
		return "appservice.public_address", s.PublicAddress
	}
	if c.Twilio.PublicURLOverride != "" && !isLoopbackURL(c.Twilio.PublicURLOverride) {
		return "network.twilio.public_url_override", c.Twilio.PublicURLOverride
	}
	return "", ""
}

// isLocalListenHost: a loopback address or name, or a unix socket (a path).
func isLocalListenHost(host string) bool {
	return IsLoopbackHost(host) || strings.HasPrefix(host, "/") || strings.HasPrefix(host, "unix:")
}

func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Host != "" && IsLoopbackHost(u.Hostname())
}
