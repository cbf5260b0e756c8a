package bridge

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"

	cbdb "github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
	"github.com/carebridge/carebridge/sms"
)

// LoginFlowAuthToken links a clinic number with the Twilio account SID and auth token.
const LoginFlowAuthToken = "auth-token"

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	authTokenPattern  = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
)

// GetLoginFlows is called when a user asks how to link a clinic number.
func (c *Connector) GetLoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{
		Name:        "Twilio number",
		Description: "Link a clinic phone number with the Twilio account SID and auth token that own it",
		ID:          LoginFlowAuthToken,
	}}
}

// CreateLogin is called when a user starts linking a clinic number.
func (c *Connector) CreateLogin(ctx context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID != LoginFlowAuthToken {
		return nil, fmt.Errorf("unknown login flow %q: use %q", flowID, LoginFlowAuthToken)
	}
	return &Login{Connector: c, User: user}, nil
}

// Login is one run of the auth-token flow.
type Login struct {
	Connector *Connector
	User      *bridgev2.User
}

var _ bridgev2.LoginProcessUserInput = (*Login)(nil)

// Start is called first and asks for the credentials and the number.
func (l *Login) Start(ctx context.Context) (*bridgev2.LoginStep, error) {
	return &bridgev2.LoginStep{
		Type:   bridgev2.LoginStepTypeUserInput,
		StepID: "org.carebridge.twilio.credentials",
		Instructions: "Enter the Twilio account SID and auth token (Twilio console → Account info) and the " +
			"clinic number patients text. carebridge points the number's SMS webhook at itself.",
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{
			{Type: bridgev2.LoginInputFieldTypeUsername, ID: "account_sid", Name: "Twilio account SID", Pattern: accountSIDPattern.String()},
			{Type: bridgev2.LoginInputFieldTypePassword, ID: "auth_token", Name: "Twilio auth token", Pattern: authTokenPattern.String()},
			{Type: bridgev2.LoginInputFieldTypePhoneNumber, ID: "phone_number", Name: "Clinic phone number"},
		}},
	}, nil
}

// SubmitUserInput is called with the filled-in fields. It checks the credentials and
// that the account owns the number, then links it and sets its webhook.
func (l *Login) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	c := l.Connector
	if c.publicBase() == "" {
		return nil, ErrPublicAddressMissing
	}
	accountSID := strings.TrimSpace(input["account_sid"])
	authToken := strings.TrimSpace(input["auth_token"])
	if !accountSIDPattern.MatchString(accountSID) {
		return nil, errors.New("the account SID must be AC followed by 32 hexadecimal characters")
	}
	if !authTokenPattern.MatchString(authToken) {
		return nil, errors.New("the auth token must be 32 hexadecimal characters")
	}
	phone, err := sms.NormalizePhone(input["phone_number"], c.Config.DefaultRegion)
	if err != nil {
		return nil, fmt.Errorf("the clinic phone number is not valid: %w", err)
	}
	provider, err := c.newProvider(accountSID, authToken)
	if err != nil {
		return nil, err
	}
	number, err := outbox.VerifyNumber(ctx, provider, accountSID, phone)
	if err != nil {
		return nil, err
	}
	loginID := MakeLoginID(phone)
	meta := &UserLoginMetadata{AccountSID: accountSID, Phone: phone, PhoneSID: number.SID}
	if err = meta.SetAuthToken(c.Keys, loginID, authToken); err != nil {
		return nil, err
	}
	ul, err := l.User.NewLogin(ctx, &database.UserLogin{
		ID:         loginID,
		RemoteName: sms.FormatPhone(phone, c.Config.DefaultRegion),
		Metadata:   meta,
	}, &bridgev2.NewLoginParams{
		LoadUserLogin: func(ctx context.Context, login *bridgev2.UserLogin) error {
			login.Client = c.newClient(login, provider, authToken)
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to save the linked number: %w", err)
	}
	// bridgev2 saved the login in its own transaction; the audit row follows it.
	err = c.audited(ctx, &cbdb.AuditEntry{Actor: cbdb.StaffActor(l.User.MXID), LoginID: string(loginID),
		Event: cbdb.EventLoginAdded, Outcome: cbdb.OutcomeOK, Detail: "clinic number linked"}, nil)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to audit linking the clinic number")
	}
	// Texts sent before the number was first linked are not the bridge's; a number linked
	// again keeps its mark, and Connect catches up on the texts sent while it was not.
	if err = c.DB.TwilioSync.Init(ctx, string(loginID), time.Now()); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to record when the clinic number was linked")
	}
	if err = outbox.PointWebhooks(ctx, provider, number, c.numberWebhooks(loginID)); err != nil {
		return nil, fmt.Errorf("the number is linked, but its SMS webhook could not be set (set it to %s in the Twilio console): %w",
			c.inboundURL(loginID), err)
	}
	ul.Client.Connect(ul.Log.WithContext(context.Background()))
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepTypeComplete,
		StepID:       "org.carebridge.twilio.complete",
		Instructions: fmt.Sprintf("Linked %s. Patients who text it now reach this bridge.", ul.RemoteName),
		CompleteParams: &bridgev2.LoginCompleteParams{
			UserLoginID: ul.ID,
			UserLogin:   ul,
		},
	}, nil
}

// Cancel is called when the user abandons the flow; nothing is held open.
func (l *Login) Cancel() {}
