package outbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

// numberAccount is a Twilio account for linking and connecting a clinic number; any other
// call panics (the nil embedded Provider), which would fail the test.
type numberAccount struct {
	sms.Provider
	checkErr     error
	number       *sms.PhoneNumber
	lookupErr    error
	configureErr error
	configured   []sms.NumberWebhooks
}

func (a *numberAccount) CheckAccount(context.Context) error { return a.checkErr }
func (a *numberAccount) LookupNumber(_ context.Context, e164 string) (*sms.PhoneNumber, error) {
	if a.lookupErr != nil {
		return nil, a.lookupErr
	}
	if a.number == nil || a.number.E164 != e164 {
		return nil, sms.ErrNumberNotOwned
	}
	return a.number, nil
}

func (a *numberAccount) ConfigureWebhooks(_ context.Context, numberSID string, hooks sms.NumberWebhooks) error {
	if numberSID != a.number.SID {
		return errors.New("no such number SID")
	}
	a.configured = append(a.configured, hooks)
	return a.configureErr
}

const accountSID = "AC00000000000000000000000000000001"

func ownedNumber() *sms.PhoneNumber {
	return &sms.PhoneNumber{SID: "PN00000000000000000000000000000001", E164: clinicPhone,
		SMSURL: "https://old.example/sms", SMSFallbackURL: ""}
}

func TestLinkingANumberSaysWhatTwilioRefused(t *testing.T) {
	ctx := context.Background()
	number, err := outbox.VerifyNumber(ctx, &numberAccount{number: ownedNumber()}, accountSID, clinicPhone)
	require.NoError(t, err)
	assert.Equal(t, "PN00000000000000000000000000000001", number.SID)

	_, err = outbox.VerifyNumber(ctx, &numberAccount{checkErr: sms.ErrBadCredentials}, accountSID, clinicPhone)
	assert.ErrorIs(t, err, sms.ErrBadCredentials)
	assert.EqualError(t, err, "Twilio did not accept the credentials: "+sms.ErrBadCredentials.Error())

	_, err = outbox.VerifyNumber(ctx, &numberAccount{number: ownedNumber()}, accountSID, "+15559990000")
	assert.EqualError(t, err, "the Twilio account "+accountSID+" does not own +15559990000: check the number or the account")

	down := errors.New("twilio answered HTTP 503")
	_, err = outbox.VerifyNumber(ctx, &numberAccount{lookupErr: down}, accountSID, clinicPhone)
	assert.ErrorIs(t, err, down)
}

func TestLinkingANumberPointsItsWebhooksAtTheBridge(t *testing.T) {
	account := &numberAccount{number: ownedNumber()}
	hooks := sms.NumberWebhooks{SMSURL: "https://bridge.example/_carebridge/twilio/15550001111/inbound",
		SMSFallbackURL: "https://bridge.example/_carebridge/twilio/15550001111/fallback"}
	require.NoError(t, outbox.PointWebhooks(context.Background(), account, account.number, hooks))
	assert.Equal(t, []sms.NumberWebhooks{hooks}, account.configured)
}

func TestConnectingANumberRepointsAWebhookThatPointsElsewhere(t *testing.T) {
	ctx := context.Background()
	want := sms.NumberWebhooks{SMSURL: "https://bridge.example/sms", SMSFallbackURL: "https://bridge.example/fallback"}

	account := &numberAccount{number: ownedNumber()}
	require.NoError(t, outbox.CheckNumber(ctx, account, clinicPhone, &want))
	assert.Equal(t, []sms.NumberWebhooks{want}, account.configured, "edited in the Twilio console: pointed back")

	right := ownedNumber()
	right.SMSURL, right.SMSFallbackURL = want.SMSURL, want.SMSFallbackURL
	account = &numberAccount{number: right}
	require.NoError(t, outbox.CheckNumber(ctx, account, clinicPhone, &want))
	assert.Empty(t, account.configured, "already right: left alone")

	account = &numberAccount{number: ownedNumber()}
	require.NoError(t, outbox.CheckNumber(ctx, account, clinicPhone, nil))
	assert.Empty(t, account.configured, "no public address: nothing to point at")

	account = &numberAccount{number: ownedNumber(), configureErr: errors.New("twilio answered HTTP 503")}
	assert.NoError(t, outbox.CheckNumber(ctx, account, clinicPhone, &want), "the number is connected all the same")
	assert.Len(t, account.configured, 1)

	for _, refused := range []error{sms.ErrNumberNotOwned, sms.ErrBadCredentials, errors.New("dial tcp: i/o timeout")} {
		account = &numberAccount{number: ownedNumber(), lookupErr: refused}
		assert.ErrorIs(t, outbox.CheckNumber(ctx, account, clinicPhone, &want), refused)
		assert.Empty(t, account.configured)
	}
}
