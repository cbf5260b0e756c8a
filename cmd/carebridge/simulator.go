package main

import (
	"context"
	"net/url"

	"github.com/carebridge/carebridge/bridge"
	"github.com/carebridge/carebridge/internal/twiliosim"
	"github.com/carebridge/carebridge/sms"
)

// newSimulator builds the simulated SMS provider for network.provider: simulator (demos
// and tests). Texts typed on its phone page go through the bridge's real webhook path,
// signed as Twilio signs.
func newSimulator(basePath, publicBase string) bridge.Simulator {
	var sim *twiliosim.Simulator
	sim = twiliosim.New(twiliosim.Options{BasePath: basePath, PublicBase: publicBase,
		Deliver: func(ctx context.Context, form url.Values) error { return sim.PostWebhook(ctx, form) }})
	return simulator{sim}
}

// simulator adapts twiliosim's accounts to the sms.Provider the bridge asks for.
type simulator struct{ *twiliosim.Simulator }

func (s simulator) Account(accountSID, authToken string) sms.Provider {
	return s.Simulator.Account(accountSID, authToken)
}
