package logmask

import (
	"bytes"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
)

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		`{"portal_id":"15551234567","receiver":"15550001111"}`:                                                    `{"portal_id":"*******4567","receiver":"*******1111"}`,
		`{"user_id":"@sms_15551234567:example.org"}`:                                                              `{"user_id":"@sms_*******4567:example.org"}`,
		`"url":"http://hs/_matrix/client/v3/profile/%40sms_15551234567%3Aexample.org?user_id=%40sms_15551234567"`: `"url":"http://hs/_matrix/client/v3/profile/%40sms_*******4567%3Aexample.org?user_id=%40sms_*******4567"`,
		`To=%2B15551234567&From=%2B15550001111`:                                                                   `To=%2B*******4567&From=%2B*******1111`,
		`{"to":"+15551234567","from":"+447700900123"}`:                                                            `{"to":"+*******4567","from":"+********0123"}`,
		`name: (555) 123-4567 and 555-123-4567 or 555.123.4567`:                                                   `name: (***) ***-4567 and ***-***-4567 or ***.***.4567`,
		`portal_id=15551234567 login=15550001111`:                                                                 `portal_id=*******4567 login=*******1111`,
		`"key":"15551234567/15550001111"`:                                                                         `"key":"*******4567/*******1111"`,
		`"local_room_id":"!15551234567.15550001111:localhost"`:                                                    `"local_room_id":"!*******4567.*******1111:localhost"`,
		// Not phone numbers: timestamps, transaction IDs, sizes, times, short codes.
		`{"ts":1795607674038,"transaction_id":"1795607674833422121","size":123456789}`: `{"ts":1795607674038,"transaction_id":"1795607674833422121","size":123456789}`,
		`"time":"2026-11-25T12:04:35.44501417Z","duration":30006.445198`:               `"time":"2026-11-25T12:04:35.44501417Z","duration":30006.445198`,
		`"error_code":30003,"attempt":2`:                                               `"error_code":30003,"attempt":2`,
		// Names in the Matrix requests mautrix logs at debug level.
		`"req_body":{"displayname":"Jane \"JD\" Doe"},"time":1`:                              `"req_body":{"displayname":"***"},"time":1`,
		`"req_body":{"name":"Jane Doe"},"x":"y"`:                                             `"req_body":{"name":"***"},"x":"y"`,
		`"req_body":{"topic":"SMS conversation with Jane Doe (Example Clinic)"}`:             `"req_body":{"topic":"***"}`,
		`"req_body":{"channel":{"id":"15551234567","displayname":"Jane Doe"},"protocol":{}}`: `"req_body":{"channel":{"id":"*******4567","displayname":"***"},"protocol":{}}`,
		`{"name":"carebridge","version":"v0.1.0"}`:                                           `{"name":"carebridge","version":"v0.1.0"}`,
	} {
		assert.Equal(t, want, string(Mask([]byte(in))), in)
	}
}

// TestMaskRedactsNamesAnywhereInRequestBodies: a room created after the patient was
// named carries the name in createRoom's initial_state (bridgev2 portal.go), behind keys
// that come first in no particular order; state, member and profile requests carry it too.
func TestMaskRedactsNamesAnywhereInRequestBodies(t *testing.T) {
	for in, want := range map[string]string{
		// createRoom as bridgev2 sends it.
		`{"level":"debug","req_id":7,"method":"POST","url":"http://hs/_matrix/client/v3/createRoom","req_body":{"visibility":"private",` +
			`"initial_state":[{"type":"m.room.topic","content":{"com.beeper.exclude_from_timeline":true,"topic":"SMS conversation with Jane Doe"}},` +
			`{"type":"m.room.name","content":{"com.beeper.exclude_from_timeline":true,"name":"Jane Doe"}},` +
			`{"type":"m.bridge","state_key":"x","content":{"channel":{"id":"15551234567","displayname":"Jane Doe"}}}],` +
			`"preset":"private_chat","is_direct":true},"message":"Request completed"}`: `{"level":"debug","req_id":7,"method":"POST","url":"http://hs/_matrix/client/v3/createRoom","req_body":{"visibility":"private",` +
			`"initial_state":[{"type":"m.room.topic","content":{"com.beeper.exclude_from_timeline":true,"topic":"***"}},` +
			`{"type":"m.room.name","content":{"com.beeper.exclude_from_timeline":true,"name":"***"}},` +
			`{"type":"m.bridge","state_key":"x","content":{"channel":{"id":"*******4567","displayname":"***"}}}],` +
			`"preset":"private_chat","is_direct":true},"message":"Request completed"}`,
		// createRoom's own name and topic, wherever they stand.
		`"req_body":{"preset":"private_chat","name":"Jane Doe","topic":"Jane's ankle","is_direct":true}`: `"req_body":{"preset":"private_chat","name":"***","topic":"***","is_direct":true}`,
		// A member event and a profile.
		`"req_body":{"membership":"join","displayname":"Jane Doe","avatar_url":""},"x":1`: `"req_body":{"membership":"join","displayname":"***","avatar_url":""},"x":1`,
		// An extensible topic (MSC3765).
		`"req_body":{"m.topic":{"m.text":[{"body":"Jane Doe","mimetype":"text/plain"}]},"topic":"Jane Doe"}`: `"req_body":{"m.topic":{"m.text":[{"body":"***","mimetype":"***"}]},"topic":"***"}`,
		// zerolog's console writer.
		`12:04PM DBG Request completed req_body={"content":{"name":"Jane Doe"},"type":"m.room.name"} req_id=7`: `12:04PM DBG Request completed req_body={"content":{"name":"***"},"type":"m.room.name"} req_id=7`,
		// Escapes, white space, nesting, a name that is not a string.
		`"req_body":{ "a" : [ {"name" : "Jane \"JD\" Doe"} , 1 , null ] , "name":{"x":"Jane"}}`: `"req_body":{ "a" : [ {"name" : "***"} , 1 , null ] , "name":{"x":"***"}}`,
		// Bodies that are not JSON objects are left alone; the rest of the line is not.
		`"req_body":"<sensitive content omitted>","displayname":"Jane Doe"`: `"req_body":"<sensitive content omitted>","displayname":"***"`,
		`"req_body":{"name":"Jane Doe","broken`:                             `"req_body":{"name":"***","broken`,
		// bridgev2's "Ghost profile drifted" warning, as JSON and from the console writer.
		`{"level":"warn","ghost_id":"x","expected_name":"Jane Doe","actual_name":"+1 555-123-4567","message":"Ghost profile drifted"}`: `{"level":"warn","ghost_id":"x","expected_name":"***","actual_name":"***","message":"Ghost profile drifted"}`,
		`9:00AM WRN Ghost profile drifted actual_name=Jane expected_name="Jane Doe" ghost_id=x`:                                        `9:00AM WRN Ghost profile drifted actual_name="***" expected_name="***" ghost_id=x`,
		// Outside request bodies, "name" is anything's name.
		`{"name":"carebridge","req_body":{},"topic_count":2}`: `{"name":"carebridge","req_body":{},"topic_count":2}`,
	} {
		assert.Equal(t, want, string(Mask([]byte(in))), in)
	}
}

func TestWrapKeepsLevelsAndLength(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(Wrap(&buf))
	log.Info().Str("patient", "+15551234567").Msg("Stored inbound text")
	assert.Equal(t, `{"level":"info","patient":"+*******4567","message":"Stored inbound text"}`+"\n", buf.String())
	n, err := Wrap(&buf).Write([]byte("+15551234567"))
	assert.NoError(t, err)
	assert.Equal(t, 12, n, "the caller's byte count")
	_, ok := Wrap(zerolog.MultiLevelWriter(&buf)).(zerolog.LevelWriter)
	assert.True(t, ok)
}

// TestConsoleWriterRequestBodies: with `format: pretty` the writer sees zerolog's console
// lines (req_body={...}), and the names in them are redacted too.
func TestConsoleWriterRequestBodies(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(zerolog.ConsoleWriter{Out: Wrap(&buf), NoColor: true})
	log.Debug().Str("url", "http://hs/_matrix/client/v3/createRoom").
		RawJSON("req_body", []byte(`{"initial_state":[{"type":"m.room.name","content":{"name":"Jane Doe"}}],"topic":"Jane Doe, +15551234567"}`)).
		Msg("Request completed")
	assert.NotContains(t, buf.String(), "Jane")
	assert.NotContains(t, buf.String(), "5551234567")
	assert.Contains(t, buf.String(), `req_body={"initial_state":[{"content":{"name":"***"},"type":"m.room.name"}],"topic":"***"}`)
}
