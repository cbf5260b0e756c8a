package config

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
)

// FederationConfig says which other organisations' homeservers may take part in patient
// conversations (referrals). Empty: rooms stay on the clinic's own server.
type FederationConfig struct {
	// AllowedServers are server names (host, or host:port; the port is ignored, as in
	// m.room.server_acl) whose users may be referred into conversation rooms.
	AllowedServers []string `yaml:"allowed_servers"`
}

// PrivacyConfig limits what travels in clear to other servers.
type PrivacyConfig struct {
	// MaskRoomNames shows only the last four digits of the patient's number in room names,
	// topics and the patient's Matrix display name (they are not end-to-end encrypted).
	MaskRoomNames bool `yaml:"mask_room_names"`
}

// dnsName is a host name as server names use them (RFC 1123 labels).
var dnsName = regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$`)

// ServerHost is the host of a Matrix server name ("hospital.example:8448" →
// "hospital.example", "[::1]:8448" → "::1"), lower-cased; the port is dropped as in
// m.room.server_acl. ok is false when it is not a server name.
func ServerHost(serverName string) (host string, ok bool) {
	host = strings.ToLower(strings.TrimSpace(serverName))
	if h, port, err := net.SplitHostPort(host); err == nil {
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return "", false
		}
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if ip := net.ParseIP(host); ip != nil {
		return host, true
	}
	return host, host != "" && len(host) <= 255 && dnsName.MatchString(host)
}

// IsIPLiteral says whether a server host is an IP address rather than a name.
func IsIPLiteral(host string) bool { return net.ParseIP(host) != nil }

// AllowedHosts are the allowed servers' hosts, lower-cased, sorted and without repeats.
func (f *FederationConfig) AllowedHosts() []string {
	var hosts []string
	for _, s := range f.AllowedServers {
		if h, ok := ServerHost(s); ok {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

func (f *FederationConfig) validate() error {
	for i, s := range f.AllowedServers {
		if strings.ContainsAny(s, "*?") {
			return invalid(fmt.Sprintf("federation.allowed_servers[%d]", i),
				fmt.Sprintf("is %q: list each server by name (wildcards would admit servers nobody reviewed)", s))
		}
		if _, ok := ServerHost(s); !ok {
			return invalid(fmt.Sprintf("federation.allowed_servers[%d]", i),
				fmt.Sprintf("is %q: write a Matrix server name such as hospital.example (the part after the colon in @dr.lee:hospital.example)", s))
		}
	}
	return nil
}
