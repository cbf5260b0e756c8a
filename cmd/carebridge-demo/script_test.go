package main

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/event"

	"github.com/carebridge/carebridge/sms"
)

func TestRandomPatientNumber(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		phone := randomPatientNumber()
		assert.Regexp(t, `^\+155501\d{5}$`, phone)
		e164, err := sms.NormalizePhone(phone, "US")
		require.NoError(t, err, phone)
		assert.Equal(t, phone, e164, "already in E.164")
		seen[phone] = true
	}
	assert.Greater(t, len(seen), 190, "a new number on (almost) every run")
}

func TestFindLinkAndCode(t *testing.T) {
	for _, tc := range []struct {
		text, link, code string
	}{
		{"Riverside Family Clinic (demo): you have a new secure message. Open it here: http://127.0.0.1:29340/s/FF9Ie_K2chJI-Oly8SFPQozL",
			"http://127.0.0.1:29340/s/FF9Ie_K2chJI-Oly8SFPQozL", ""},
		{"Open it here: https://clinic.example/s/abc.", "https://clinic.example/s/abc", ""},
		{"Riverside Family Clinic (demo): your code is 957510. It expires in 10 minutes. Do not share it with anyone.", "", "957510"},
		{"Your appointment is 1234567 minutes away", "", ""},
	} {
		assert.Equal(t, tc.link, findLink(tc.text), tc.text)
		assert.Equal(t, tc.code, findCode(tc.text), tc.text)
	}
}

func TestPageFields(t *testing.T) {
	page := `<form method="post" action="/s/tok/code">
<input type="hidden" name="csrf" value="a-b_c&#43;d">
<input id="to" name="to" type="tel" value="&#43;15550100100" list="clinics">
<p class="error" role="alert">The code is wrong &amp; was not accepted.</p>
<button type="submit" class="primary" id="send-code">Text me a code</button>`
	assert.Equal(t, "a-b_c+d", hiddenField(page, "csrf"))
	assert.Equal(t, "", hiddenField(page, "code"))
	assert.Equal(t, "+15550100100", inputValue(page, "to"))
	assert.Equal(t, "The code is wrong & was not accepted.", pageError(page))
	assert.Equal(t, "Text me a code", firstMatch(page, `(?s)id="send-code">(.*?)</button>`))
}

func TestChatEntries(t *testing.T) {
	page := `<ol id="messages" class="messages" role="log">
<li id="m3" class="msg theirs">
<p class="meta"><span class="who">nurse</span> <time datetime="2026-01-02T10:00:00Z">10:00</time></p>
<p class="text">Thanks Maria. How is Leo &#34;drinking&#34;?
Line two &lt;b&gt;</p>
</li>
<li id="m4" class="msg mine">
<p class="meta"><span class="who">You</span> <time datetime="2026-01-02T10:01:00Z">10:01</time></p>
<a class="image-link" href="/chat/file/4"><img src="/chat/file/4" alt="rash.png"></a>
</li>
</ol>`
	assert.Equal(t, []chatEntry{
		{Mine: false, Sender: "nurse", Text: "Thanks Maria. How is Leo \"drinking\"?\nLine two <b>"},
		{Mine: true, Sender: "You", Text: "rash.png"},
	}, chatEntries(page))
	assert.Empty(t, chatEntries(`<li class="empty" id="empty">No messages yet.</li>`))
}

func TestLeakedWords(t *testing.T) {
	alert := "Riverside Family Clinic (demo): you have a new secure message. Open it here: http://127.0.0.1:29340/s/rash-Maria_photo"
	assert.Empty(t, leakedWords(alert, staffSecure), "short words and the link's letters do not count")
	assert.Equal(t, []string{"send", "photo", "rash"}, leakedWords("Clinic: send the photo of the RASH", staffSecure))
}

func TestInviteIsFor(t *testing.T) {
	key := func(s string) *string { return &s }
	name := &event.Event{Type: event.StateRoomName, StateKey: key(""),
		Content: event.Content{Parsed: &event.RoomNameEventContent{Name: "(555) 011-2345"}}}
	other := &event.Event{Type: event.StateRoomName, StateKey: key(""),
		Content: event.Content{Parsed: &event.RoomNameEventContent{Name: "(555) 011-9999"}}}
	for _, tc := range []struct {
		name  string
		state []*event.Event
		want  bool
	}{
		{"named after the number", []*event.Event{name}, true},
		{"another patient", []*event.Event{other}, false},
		{"no hint", nil, false},
	} {
		assert.Equal(t, tc.want, inviteIsFor(tc.state, "5550112345"), tc.name)
	}
}

func TestRashPhoto(t *testing.T) {
	data, err := rashPhoto()
	require.NoError(t, err)
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	require.NoError(t, err)
	assert.Equal(t, 1152, cfg.Width)
	assert.Less(t, len(data), 100<<10, "small enough for any upload limit")
}
