//go:build !e2eepatient

package bridge

import (
	"maunium.net/go/mautrix/bridgev2/matrix"

	"github.com/carebridge/carebridge/securechat"
)

// e2eePatients is empty: the E2EE-to-the-patient spike (issue 18, e2eepatient.go) is built
// only with the e2eepatient tag.
type e2eePatients struct{}

// initE2EEPatient does nothing without the e2eepatient tag.
func (c *Connector) initE2EEPatient(*matrix.Connector) {}

// startE2EEPatient does nothing without the e2eepatient tag.
func (c *Connector) startE2EEPatient() error { return nil }

// codePagePreloads is nil without the e2eepatient tag: the secure chat's pages are unchanged.
func (c *Connector) codePagePreloads() []securechat.Preload { return nil }
