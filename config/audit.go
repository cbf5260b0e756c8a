package config

import (
	"fmt"
	"strings"
	"time"
)

// AuditConfig anchors the audit log outside the database: the bridge posts the log's
// head (`carebridge audit head`: the newest row's ID and hash, nothing about a patient)
// as an encrypted notice into an admin room, so that a rewrite of the database cannot
// change what the room already holds.
type AuditConfig struct {
	// HeadRoom is the room ID (!…:server) of an encrypted room the bridge bot is invited
	// to; empty: no notices.
	HeadRoom string `yaml:"head_room"`
	// HeadInterval is how often the chain is verified and its head posted when it changed.
	HeadInterval time.Duration `yaml:"head_interval"`
}

// minHeadInterval keeps the full verification each notice costs from running back to back.
const minHeadInterval = time.Second

func (a *AuditConfig) validate() error {
	if a.HeadRoom == "" {
		return nil
	}
	if !strings.HasPrefix(a.HeadRoom, "!") || !strings.Contains(a.HeadRoom, ":") {
		return invalid("audit.head_room", fmt.Sprintf("is %q: write the admin room's ID such as !AbCdEf:clinic.example "+
			"(Element: Room settings → Advanced), or leave it empty", a.HeadRoom))
	}
	if a.HeadInterval < minHeadInterval || a.HeadInterval > 7*24*time.Hour {
		return invalid("audit.head_interval", "must be between 1s and 168h (default 1h)")
	}
	return nil
}
