//go:build !e2eepatient

package bridge

import "maunium.net/go/mautrix/bridgev2/matrix"

// initE2EEPatient does nothing: the E2EE-to-the-patient spike (issue 18, e2eepatient.go) is
// built only with the e2eepatient tag.
func (c *Connector) initE2EEPatient(*matrix.Connector) {}
