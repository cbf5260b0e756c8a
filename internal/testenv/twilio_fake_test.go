package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

const (
	fakeTestClinicNumber = "+15550001111"
	fakeTestPatient      = "+15551234567"
)

// fakeTwilioFixture is one account with one number, driven through the real twilio-go.
type fakeTwilioFixture struct {
	fake       *FakeTwilio
	api        *openapi.ApiService
	accountSID string
	authToken  string
	numberSID  string
}

func newFakeTwilioFixture(t *testing.T) fakeTwilioFixture {
	t.Helper()
	fake := NewFakeTwilio()
	t.Cleanup(fake.Close)
	fx := fakeTwilioFixture{
		fake:       fake,
		accountSID: NewTwilioSID("AC"),
		authToken:  NewTwilioSID(""),
	}
	fake.AddAccount(fx.accountSID, fx.authToken)
	fx.numberSID = fake.AddNumber(fx.accountSID, fakeTestClinicNumber)
	fx.api = newFakeTwilioAPI(fake, fx.accountSID, fx.authToken)
	return fx
}

// newFakeTwilioAPI builds twilio-go's API service the way the bridge does, with only
// the transport pointing at the fake.
func newFakeTwilioAPI(fake *FakeTwilio, sid, token string) *openapi.ApiService {
	c := &client.Client{
		Credentials: client.NewCredentials(sid, token),
		HTTPClient:  &http.Client{Transport: fake.Transport(), Timeout: 5 * time.Second},
	}
	c.SetAccountSid(sid)
	return openapi.NewApiServiceWithClient(c)
}

func requireTwilioError(t *testing.T, err error, code, status int) {
	t.Helper()
	require.Error(t, err)
	var restErr *client.TwilioRestError
	require.True(t, errors.As(err, &restErr), "want *client.TwilioRestError, got %T: %v", err, err)
	assert.Equal(t, code, restErr.Code, restErr.Message)
	assert.Equal(t, status, restErr.Status)
	assert.NotEmpty(t, restErr.Message)
	assert.Equal(t, "https://www.twilio.com/docs/errors/"+strconv.Itoa(code), restErr.MoreInfo)
}

func TestFakeTwilioCreateMessage(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	callback := "https://bridge.example.org/twilio/status?portal=abc"
	params := (&openapi.CreateMessageParams{}).
		SetTo(fakeTestPatient).
		SetFrom(fakeTestClinicNumber).
		SetBody("Your appointment is confirmed for Tuesday at 10:00.").
		SetStatusCallback(callback)
	msg, err := fx.api.CreateMessage(params)
	require.NoError(t, err)

	require.NotNil(t, msg.Sid)
	assert.Regexp(t, `^SM[0-9a-f]{32}$`, *msg.Sid)
	assert.Equal(t, fx.accountSID, *msg.AccountSid)
	assert.Equal(t, "queued", *msg.Status)
	assert.Equal(t, "outbound-api", *msg.Direction)
	assert.Equal(t, fakeTestPatient, *msg.To)
	assert.Equal(t, fakeTestClinicNumber, *msg.From)
	assert.Equal(t, "Your appointment is confirmed for Tuesday at 10:00.", *msg.Body)
	assert.Equal(t, "1", *msg.NumSegments)
	assert.Equal(t, "0", *msg.NumMedia)
	assert.Equal(t, "2010-04-01", *msg.ApiVersion)
	assert.Equal(t, "/2010-04-01/Accounts/"+fx.accountSID+"/Messages/"+*msg.Sid+".json", *msg.Uri)
	assert.Nil(t, msg.ErrorCode)
	assert.Nil(t, msg.DateSent)
	_, err = time.Parse(time.RFC1123Z, *msg.DateCreated)
	assert.NoError(t, err, "date_created must be RFC 1123 with numeric zone")

	got := fx.fake.Messages()
	require.Len(t, got, 1)
	assert.Equal(t, *msg.Sid, got[0].SID)
	assert.Equal(t, fx.accountSID, got[0].AccountSID)
	assert.Equal(t, fakeTestClinicNumber, got[0].From)
	assert.Equal(t, fakeTestPatient, got[0].To)
	assert.Equal(t, callback, got[0].StatusCallback)
	assert.WithinDuration(t, time.Now(), got[0].ReceivedAt, 5*time.Second)
}

func TestFakeTwilioCreateMessageAccepted(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		media     []string
		wantSID   string
		wantSegs  string
		wantMedia string
	}{
		{"body at the 1600 character limit", strings.Repeat("a", 1600), nil, `^SM`, "11", "0"},
		{"media only", "", []string{"https://cdn.example.org/scan.jpg"}, `^MM`, "1", "1"},
		{"ten media", "Your results", tenURLs(10), `^MM`, "1", "10"},
		{"unicode body", strings.Repeat("✓", 71), nil, `^SM`, "2", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFakeTwilioFixture(t)
			params := (&openapi.CreateMessageParams{}).SetTo(fakeTestPatient).SetFrom(fakeTestClinicNumber)
			if tt.body != "" {
				params.SetBody(tt.body)
			}
			if tt.media != nil {
				params.SetMediaUrl(tt.media)
			}
			msg, err := fx.api.CreateMessage(params)
			require.NoError(t, err)
			assert.Regexp(t, tt.wantSID, *msg.Sid)
			assert.Equal(t, tt.wantSegs, *msg.NumSegments)
			assert.Equal(t, tt.wantMedia, *msg.NumMedia)
			require.Len(t, fx.fake.Messages(), 1)
			assert.Equal(t, tt.media, fx.fake.Messages()[0].MediaURLs)
		})
	}
}

func tenURLs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "https://cdn.example.org/page" + strconv.Itoa(i) + ".png"
	}
	return out
}

func TestFakeTwilioCreateMessageRejected(t *testing.T) {
	tests := []struct {
		name  string
		setup func(fx fakeTwilioFixture, p *openapi.CreateMessageParams)
		code  int
	}{
		{"missing To", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.To = nil }, 21604},
		{"To without country code", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.SetTo("5551234567") }, 21211},
		{"To with spaces", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.SetTo("+1 555 123 4567") }, 21211},
		{"To too short", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.SetTo("+1555") }, 21211},
		{"no From nor messaging service", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.From = nil }, 21603},
		{"From not on the account", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.SetFrom("+15559990000") }, 21606},
		{"From of another account", func(fx fakeTwilioFixture, p *openapi.CreateMessageParams) {
			other := NewTwilioSID("AC")
			fx.fake.AddAccount(other, NewTwilioSID(""))
			fx.fake.AddNumber(other, "+15550002222")
			p.SetFrom("+15550002222")
		}, 21606},
		{"unknown messaging service", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) {
			p.From = nil
			p.SetMessagingServiceSid(NewTwilioSID("MG"))
		}, 21701},
		{"To equals From", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.SetTo(fakeTestClinicNumber) }, 21266},
		{"empty body and no media", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.SetBody("") }, 21602},
		{"body over 1600 characters", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.SetBody(strings.Repeat("a", 1601)) }, 21617},
		{"relative media URL", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.SetMediaUrl([]string{"/media/scan.jpg"}) }, 21620},
		{"ftp media URL", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) {
			p.SetMediaUrl([]string{"ftp://example.org/scan.jpg"})
		}, 21620},
		{"eleven media", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.SetMediaUrl(tenURLs(11)) }, 21623},
		{"relative status callback", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) { p.SetStatusCallback("/twilio/status") }, 21609},
		{"status callback host with underscore", func(_ fakeTwilioFixture, p *openapi.CreateMessageParams) {
			p.SetStatusCallback("https://bridge_1.example.org/twilio/status")
		}, 21609},
		{"recipient opted out", func(fx fakeTwilioFixture, _ *openapi.CreateMessageParams) {
			fx.fake.OptOut(fakeTestClinicNumber, fakeTestPatient)
		}, 21610},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFakeTwilioFixture(t)
			p := (&openapi.CreateMessageParams{}).
				SetTo(fakeTestPatient).
				SetFrom(fakeTestClinicNumber).
				SetBody("Reminder: bring your insurance card.")
			tt.setup(fx, p)
			_, err := fx.api.CreateMessage(p)
			requireTwilioError(t, err, tt.code, http.StatusBadRequest)
			assert.Empty(t, fx.fake.Messages(), "a rejected message must not be recorded")
		})
	}
}

func TestFakeTwilioMessagingService(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	svc := fx.fake.AddMessagingService(fx.accountSID, fakeTestClinicNumber)
	msg, err := fx.api.CreateMessage((&openapi.CreateMessageParams{}).
		SetTo(fakeTestPatient).SetMessagingServiceSid(svc).SetBody("Hello from the clinic"))
	require.NoError(t, err)
	assert.Equal(t, "accepted", *msg.Status)
	assert.Equal(t, svc, *msg.MessagingServiceSid)
	assert.Nil(t, msg.From)
	assert.Equal(t, fakeTestClinicNumber, fx.fake.Messages()[0].From)

	fx.fake.OptOut(fakeTestClinicNumber, fakeTestPatient)
	_, err = fx.api.CreateMessage((&openapi.CreateMessageParams{}).
		SetTo(fakeTestPatient).SetMessagingServiceSid(svc).SetBody("Hello again"))
	requireTwilioError(t, err, 21610, http.StatusBadRequest)
}

func TestFakeTwilioAuthentication(t *testing.T) {
	tests := []struct {
		name   string
		api    func(fx fakeTwilioFixture) *openapi.ApiService
		params func(fx fakeTwilioFixture) *openapi.CreateMessageParams
		status int
	}{
		{
			name: "wrong auth token",
			api: func(fx fakeTwilioFixture) *openapi.ApiService {
				return newFakeTwilioAPI(fx.fake, fx.accountSID, "00000000000000000000000000000000")
			},
			status: http.StatusUnauthorized,
		},
		{
			name: "unknown account",
			api: func(fx fakeTwilioFixture) *openapi.ApiService {
				return newFakeTwilioAPI(fx.fake, NewTwilioSID("AC"), fx.authToken)
			},
			status: http.StatusUnauthorized,
		},
		{
			name: "path names another account",
			api: func(fx fakeTwilioFixture) *openapi.ApiService {
				other, token := NewTwilioSID("AC"), NewTwilioSID("")
				fx.fake.AddAccount(other, token)
				return newFakeTwilioAPI(fx.fake, other, token)
			},
			params: func(fx fakeTwilioFixture) *openapi.CreateMessageParams {
				return (&openapi.CreateMessageParams{}).SetPathAccountSid(fx.accountSID)
			},
			status: http.StatusForbidden,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFakeTwilioFixture(t)
			p := &openapi.CreateMessageParams{}
			if tt.params != nil {
				p = tt.params(fx)
			}
			p.SetTo(fakeTestPatient).SetFrom(fakeTestClinicNumber).SetBody("Hello")
			_, err := tt.api(fx).CreateMessage(p)
			requireTwilioError(t, err, 20003, tt.status)
			assert.Empty(t, fx.fake.Messages())
		})
	}
}

func TestFakeTwilioRawHTTP(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	accountURL := fx.fake.URL() + "/2010-04-01/Accounts/" + fx.accountSID
	tests := []struct {
		name     string
		method   string
		url      string
		auth     bool
		wantHTTP int
		wantCode int
	}{
		{"no credentials", http.MethodGet, accountURL + ".json", false, 401, 20003},
		{"unknown path", http.MethodGet, accountURL + "/Calls/Nope.json", true, 404, 20404},
		{"path outside the API", http.MethodGet, fx.fake.URL() + "/v1/Services", true, 404, 20404},
		{"unknown number", http.MethodGet, accountURL + "/IncomingPhoneNumbers/" + NewTwilioSID("PN") + ".json", true, 404, 20404},
		{"unknown message", http.MethodGet, accountURL + "/Messages/" + NewTwilioSID("SM") + ".json", true, 404, 20404},
		{"wrong method", http.MethodDelete, accountURL + "/Messages.json", true, 405, 20004},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, nil)
			require.NoError(t, err)
			if tt.auth {
				req.SetBasicAuth(fx.accountSID, fx.authToken)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, tt.wantHTTP, resp.StatusCode)
			assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
			if tt.wantHTTP == http.StatusUnauthorized {
				assert.Equal(t, `Basic realm="Twilio API"`, resp.Header.Get("WWW-Authenticate"))
			}
			data, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			var body map[string]any
			require.NoError(t, json.Unmarshal(data, &body), string(data))
			assert.EqualValues(t, tt.wantCode, body["code"])
			assert.EqualValues(t, tt.wantHTTP, body["status"])
			assert.Equal(t, "https://www.twilio.com/docs/errors/"+strconv.Itoa(tt.wantCode), body["more_info"])
			assert.NotEmpty(t, body["message"])
		})
	}
}

func TestFakeTwilioFetchAccount(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	acct, err := fx.api.FetchAccount(fx.accountSID)
	require.NoError(t, err)
	assert.Equal(t, fx.accountSID, *acct.Sid)
	assert.Equal(t, "active", *acct.Status)
	assert.Equal(t, "Full", *acct.Type)
	assert.NotEmpty(t, *acct.FriendlyName)
	assert.Equal(t, "/2010-04-01/Accounts/"+fx.accountSID+".json", *acct.Uri)

	_, err = fx.api.FetchAccount(NewTwilioSID("AC"))
	requireTwilioError(t, err, 20003, http.StatusForbidden)
}

func TestFakeTwilioIncomingPhoneNumbers(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	fx.fake.AddNumber(fx.accountSID, "+15550003333")
	fx.fake.AddNumber(fx.accountSID, "+447700900123")
	other := NewTwilioSID("AC")
	fx.fake.AddAccount(other, NewTwilioSID(""))
	fx.fake.AddNumber(other, "+15550004444")

	t.Run("filter by exact number", func(t *testing.T) {
		nums, err := fx.api.ListIncomingPhoneNumber((&openapi.ListIncomingPhoneNumberParams{}).SetPhoneNumber(fakeTestClinicNumber))
		require.NoError(t, err)
		require.Len(t, nums, 1)
		n := nums[0]
		assert.Equal(t, fx.numberSID, *n.Sid)
		assert.Regexp(t, `^PN[0-9a-f]{32}$`, *n.Sid)
		assert.Equal(t, fx.accountSID, *n.AccountSid)
		assert.Equal(t, fakeTestClinicNumber, *n.PhoneNumber)
		assert.Equal(t, "(555) 000-1111", *n.FriendlyName)
		assert.Equal(t, "in-use", *n.Status)
		assert.Equal(t, "POST", *n.SmsMethod)
		assert.Equal(t, "", *n.SmsUrl)
		require.NotNil(t, n.Capabilities)
		assert.True(t, n.Capabilities.Sms)
		assert.True(t, n.Capabilities.Mms)
		assert.True(t, n.Capabilities.Voice)
	})
	t.Run("no match", func(t *testing.T) {
		nums, err := fx.api.ListIncomingPhoneNumber((&openapi.ListIncomingPhoneNumberParams{}).SetPhoneNumber("+15550009999"))
		require.NoError(t, err)
		assert.Empty(t, nums)
	})
	t.Run("another account's number is not listed", func(t *testing.T) {
		nums, err := fx.api.ListIncomingPhoneNumber((&openapi.ListIncomingPhoneNumberParams{}).SetPhoneNumber("+15550004444"))
		require.NoError(t, err)
		assert.Empty(t, nums)
	})
	t.Run("pages follow next_page_uri", func(t *testing.T) {
		nums, err := fx.api.ListIncomingPhoneNumber((&openapi.ListIncomingPhoneNumberParams{}).SetPageSize(1))
		require.NoError(t, err)
		require.Len(t, nums, 3)
		assert.Equal(t, []string{fakeTestClinicNumber, "+15550003333", "+447700900123"},
			[]string{*nums[0].PhoneNumber, *nums[1].PhoneNumber, *nums[2].PhoneNumber})
		assert.Equal(t, "+447700900123", *nums[2].FriendlyName)
	})
	t.Run("page shape", func(t *testing.T) {
		page, err := fx.api.PageIncomingPhoneNumber((&openapi.ListIncomingPhoneNumberParams{}).SetPageSize(2), "", "")
		require.NoError(t, err)
		assert.Len(t, page.IncomingPhoneNumbers, 2)
		assert.Equal(t, 2, page.PageSize)
		assert.Equal(t, 1, page.End)
		require.NotNil(t, page.NextPageUri)
		assert.Contains(t, *page.NextPageUri, "Page=1")
		assert.Nil(t, page.PreviousPageUri)
		assert.Contains(t, page.FirstPageUri, "/2010-04-01/Accounts/"+fx.accountSID+"/IncomingPhoneNumbers.json?")
	})
}

func TestFakeTwilioUpdateIncomingPhoneNumber(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	smsURL := "https://bridge.example.org/_twilio/sms"
	n, err := fx.api.UpdateIncomingPhoneNumber(fx.numberSID, (&openapi.UpdateIncomingPhoneNumberParams{}).
		SetSmsUrl(smsURL).SetSmsMethod("POST").SetStatusCallback("https://bridge.example.org/_twilio/status"))
	require.NoError(t, err)
	assert.Equal(t, smsURL, *n.SmsUrl)
	assert.Equal(t, "POST", *n.SmsMethod)
	assert.Equal(t, "https://bridge.example.org/_twilio/status", *n.StatusCallback)

	fetched, err := fx.api.FetchIncomingPhoneNumber(fx.numberSID, nil)
	require.NoError(t, err)
	assert.Equal(t, smsURL, *fetched.SmsUrl)

	tests := []struct {
		name   string
		sid    string
		params *openapi.UpdateIncomingPhoneNumberParams
		code   int
		status int
	}{
		{"relative SmsUrl", fx.numberSID, (&openapi.UpdateIncomingPhoneNumberParams{}).SetSmsUrl("/_twilio/sms"), 21402, 400},
		{"SmsUrl without scheme", fx.numberSID, (&openapi.UpdateIncomingPhoneNumberParams{}).SetSmsUrl("bridge.example.org/sms"), 21402, 400},
		{"SmsMethod PUT", fx.numberSID, (&openapi.UpdateIncomingPhoneNumberParams{}).SetSmsMethod("PUT"), 21403, 400},
		{"unknown number", NewTwilioSID("PN"), (&openapi.UpdateIncomingPhoneNumberParams{}).SetSmsUrl(smsURL), 20404, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fx.api.UpdateIncomingPhoneNumber(tt.sid, tt.params)
			requireTwilioError(t, err, tt.code, tt.status)
		})
	}
	fetched, err = fx.api.FetchIncomingPhoneNumber(fx.numberSID, nil)
	require.NoError(t, err)
	assert.Equal(t, smsURL, *fetched.SmsUrl, "a rejected update must leave the number unchanged")
}

func TestFakeTwilioWaitForMessage(t *testing.T) {
	fx := newFakeTwilioFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	found := make(chan FakeMessage, 1)
	waitErr := make(chan error, 1)
	go func() {
		m, err := fx.fake.WaitForMessage(ctx, func(m FakeMessage) bool { return m.To == "+15557654321" })
		found <- m
		waitErr <- err
	}()
	for _, to := range []string{fakeTestPatient, "+15557654321"} {
		_, err := fx.api.CreateMessage((&openapi.CreateMessageParams{}).SetTo(to).SetFrom(fakeTestClinicNumber).SetBody("Hi"))
		require.NoError(t, err)
	}
	m := <-found
	require.NoError(t, <-waitErr)
	assert.Equal(t, "+15557654321", m.To)

	// Already there: returns at once.
	m, err := fx.fake.WaitForMessage(ctx, func(m FakeMessage) bool { return m.To == fakeTestPatient })
	require.NoError(t, err)
	assert.Equal(t, fakeTestPatient, m.To)

	// Status changes wake waiters too.
	m, err = fx.fake.WaitForMessage(ctx, func(m FakeMessage) bool { return m.To == fakeTestPatient && m.Status == "delivered" })
	require.NoError(t, err)
	assert.Equal(t, "delivered", m.Status)

	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	_, err = fx.fake.WaitForMessage(short, func(m FakeMessage) bool { return m.To == "+15550000000" })
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestFakeTwilioSegments(t *testing.T) {
	tests := []struct {
		body string
		want int
	}{
		{"", 1},
		{"Your appointment is confirmed.", 1},
		{strings.Repeat("a", 160), 1},
		{strings.Repeat("a", 161), 2},
		{strings.Repeat("a", 306), 2},
		{strings.Repeat("a", 307), 3},
		{strings.Repeat("€", 80), 1},
		{strings.Repeat("€", 81), 2},
		{strings.Repeat("é", 160), 1},
		{strings.Repeat("✓", 70), 1},
		{strings.Repeat("✓", 71), 2},
		{strings.Repeat("😀", 35), 1},
		{strings.Repeat("😀", 36), 2},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, twilioSegments(tt.body), "%d runes of %q", len([]rune(tt.body)), firstRune(tt.body))
	}
}

func firstRune(s string) string {
	for _, r := range s {
		return string(r)
	}
	return ""
}
