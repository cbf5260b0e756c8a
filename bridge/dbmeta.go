package bridge

import (
	"maunium.net/go/mautrix/bridgev2/database"
)

// UserLoginMetadata is what a linked clinic number keeps in bridgev2's user_login table.
type UserLoginMetadata struct {
	AccountSID string `json:"account_sid"`
	AuthToken  string `json:"auth_token"`
	Phone      string `json:"phone"`     // the clinic number, E.164
	PhoneSID   string `json:"phone_sid"` // Twilio's PN… SID of the number
}

// GetDBMetaTypes is called once at start-up to learn the metadata types.
func (c *Connector) GetDBMetaTypes() database.MetaTypes {
	return database.MetaTypes{
		UserLogin: func() any { return &UserLoginMetadata{} },
	}
}
