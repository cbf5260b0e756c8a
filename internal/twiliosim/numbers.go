package twiliosim

import (
	"github.com/nyaruka/phonenumbers"

	"github.com/carebridge/carebridge/sms"
)

// typedRegion is where a number typed without its country code is read before any clinic
// number is linked: the demo's numbers are North American.
const typedRegion = "US"

// normalizeTyped reads a number as a person types it on a phone ("(555) 123-4567",
// "555-123-4567", "+1 555 123 4567") and returns it in E.164. Without a country code it
// is read in the country of the clinic number linked last.
func (s *Simulator) normalizeTyped(raw string) (string, bool) {
	s.mu.Lock()
	clinic := s.lastClinic
	s.mu.Unlock()
	region := typedRegion
	if num, err := phonenumbers.Parse(clinic, ""); clinic != "" && err == nil {
		if r := phonenumbers.GetRegionCodeForNumber(num); r != "" && r != "ZZ" {
			region = r
		}
	}
	e164, err := sms.NormalizePhone(raw, region)
	return e164, err == nil && e164Pattern.MatchString(e164)
}
