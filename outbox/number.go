package outbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/sms"
)

// A clinic number's account at Twilio is checked when staff link the number and each time
// it connects; these are the only calls to Twilio's account and number resources.

// VerifyNumber is called when staff link a clinic number, with the provider of the
// credentials they gave: Twilio must accept the credentials, and the account must own
// the number. Its errors are sentences for staff.
func VerifyNumber(ctx context.Context, p sms.Provider, accountSID, phone string) (*sms.PhoneNumber, error) {
	if err := p.CheckAccount(ctx); err != nil {
		return nil, fmt.Errorf("Twilio did not accept the credentials: %w", err)
	}
	number, err := p.LookupNumber(ctx, phone)
	if errors.Is(err, sms.ErrNumberNotOwned) {
		return nil, fmt.Errorf("the Twilio account %s does not own %s: check the number or the account", accountSID, phone)
	} else if err != nil {
		return nil, err
	}
	return number, nil
}

// PointWebhooks is called once a clinic number is linked: it points the number's inbound
// SMS webhook (and its fallback) at the bridge.
func PointWebhooks(ctx context.Context, p sms.Provider, number *sms.PhoneNumber, hooks sms.NumberWebhooks) error {
	return p.ConfigureWebhooks(ctx, number.SID, hooks)
}

// CheckNumber is called when a linked clinic number connects. It returns the lookup's
// error when Twilio cannot tell that the account still owns the number
// (sms.ErrNumberNotOwned or sms.ErrBadCredentials when it no longer does). With want set,
// a webhook that points elsewhere (the public address changed, or someone edited it in
// the Twilio console: a wrong one loses every text) is pointed at want again; a failure
// to is logged, and the number counts as connected all the same.
func CheckNumber(ctx context.Context, p sms.Provider, phone string, want *sms.NumberWebhooks) error {
	number, err := p.LookupNumber(ctx, phone)
	if err != nil {
		return err
	}
	if want != nil && (number.SMSURL != want.SMSURL || number.SMSFallbackURL != want.SMSFallbackURL) {
		if err = p.ConfigureWebhooks(ctx, number.SID, *want); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to point the clinic number's SMS webhook at the bridge")
		} else {
			zerolog.Ctx(ctx).Info().Str("webhook", want.SMSURL).Str("fallback", want.SMSFallbackURL).
				Msg("Pointed the clinic number's SMS webhook at the bridge")
		}
	}
	return nil
}
