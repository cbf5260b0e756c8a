package logmask

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzNumbersMatchRegex: the scanner masks exactly what the regular expressions it
// replaced masked (regex_ref_test.go), on any input.
func FuzzNumbersMatchRegex(f *testing.F) {
	for _, s := range []string{
		`{"to":"+15551234567","from":"+447700900123"}`,
		`To=%2B15551234567&From=%2b15550001111`,
		`"local_room_id":"!15551234567.15550001111:localhost"`,
		`+15551234567+15550001111/15551234567/15550001111/`,
		`(555) 123-4567(555)123-4567 555-123-4567-555.123.4567`,
		`555-123-45678 1555-123-4567 (555)  123-4567 555-123.4567`,
		`"ts":1795607674038,"transaction_id":"1795607674833422121"`,
		`sms_123456789 sms_1234567890123456 "1234567890" =123456789012345 ` + "\t1234567890\f",
		"\xff555-123-4567\xfe+155512345678\x80",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		var m masker
		got := m.maskNumbers(line, false)
		require.Equal(t, orig, line, "the input is not changed")
		want := regexMaskNumbers(bytes.Clone(line))
		require.Equal(t, string(want), string(got), "%q", line)
	})
}

// FuzzMask: any line, valid JSON or not, is masked without a panic, keeps no name the
// old masking removed, and masking twice changes nothing more.
func FuzzMask(f *testing.F) {
	for _, s := range []string{
		`"req_body":{"initial_state":[{"type":"m.room.name","content":{"name":"Jane Doe"}}],"topic":"x"}`,
		`req_body={"content":{"name":"Jane"}} "displayname":"Jane \"J\" Doe" req_body=[`,
		`"req_body":{"a":[{"b":[[]]},"c",1e5,true],"m.topic":{"m.text":[{"body":"Jane"}]}}`,
		`"req_body":{"name":"Jane Doe","broken`,
		`"req_body":{"name":`,
		`{"expected_name":"Jane","actual_name":"x"} WRN x actual_name=Jane expected_name="Jane Doe" name name`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		got := Mask(line)
		require.Equal(t, orig, line, "the input is not changed")
		assert.Equal(t, string(got), string(Mask(bytes.Clone(got))), "masking is idempotent")
		if !bytes.Contains(line, []byte("req_body")) && !bytes.Contains(line, []byte("_name")) {
			// Without a request body or a ghost's names, the names are the old ones: the
			// same output.
			assert.Equal(t, string(regexMask(bytes.Clone(line))), string(got))
		}
	})
}

func TestMaskAllocatesNothingForACleanLine(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop what it holds")
	}
	line := []byte(`{"level":"debug","time":"2026-11-25T12:04:35Z","message":"Nothing to hide"}`)
	assert.Zero(t, testing.AllocsPerRun(100, func() { Mask(line) }))
	w := Wrap(io.Discard)
	for _, l := range benchLines {
		assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = w.Write(l) }), "%s", l)
	}
}

// benchLines are lines the bridge writes in an inbound burst at debug level.
var benchLines = [][]byte{
	[]byte(`{"level":"debug","req_id":412,"method":"PUT","url":"http://127.0.0.1:8008/_matrix/client/v3/rooms/%21AbCdEfGhIj%3Alocalhost/send/m.room.encrypted/mautrix-go_1795607674833422121_3?user_id=%40sms_15551234567%3Alocalhost","duration":12.04,"status_code":200,"response_length":59,"response_mime":"application/json","time":"2026-11-25T12:04:35.44501417Z","message":"Request completed"}` + "\n"),
	[]byte(`{"level":"debug","portal_id":"15551234567","portal_receiver":"15550001111","portal_mxid":"!AbCdEfGhIj:localhost","action":"handle remote event","source_id":"15550001111","bridge_evt_type":"Message","message_sid":"SM0123456789abcdef0123456789abcdef","time":"2026-11-25T12:04:35.4512Z","message":"Sending message to Matrix"}` + "\n"),
	[]byte(`{"level":"info","component":"sms","from":"+15551234567","to":"+15550001111","message_sid":"SM0123456789abcdef0123456789abcdef","num_media":0,"time":"2026-11-25T12:04:35.43Z","message":"Stored inbound text"}` + "\n"),
	[]byte(`{"level":"debug","req_id":413,"method":"POST","url":"http://127.0.0.1:8008/_matrix/client/v3/createRoom","duration":85.2,"status_code":200,"req_body":{"visibility":"private","initial_state":[{"type":"m.room.topic","content":{"com.beeper.exclude_from_timeline":true,"topic":"SMS conversation with Jane Doe through +15550001111 (Example Clinic)"}},{"type":"m.room.name","content":{"com.beeper.exclude_from_timeline":true,"name":"Jane Doe"}}],"preset":"private_chat","is_direct":true},"time":"2026-11-25T12:04:35.5Z","message":"Request completed"}` + "\n"),
	[]byte(`{"level":"debug","transaction_id":"1795607674833422121","event_count":3,"ephemeral_count":0,"time":"2026-11-25T12:04:35.46Z","duration":0.8,"message":"Handled transaction"}` + "\n"),
}

// BenchmarkMask prints ns and allocations per line for the scanner and for the regular
// expressions it replaced, on lines of an inbound burst:
//
//	go test -run '^$' -bench Mask -benchmem ./internal/logmask
func BenchmarkMask(b *testing.B) {
	var size int64
	for _, l := range benchLines {
		size += int64(len(l))
	}
	perLine := func(b *testing.B, mask func([]byte) []byte) {
		b.SetBytes(size / int64(len(benchLines)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			mask(benchLines[i%len(benchLines)])
		}
	}
	b.Run("regex", func(b *testing.B) { perLine(b, regexMask) })
	b.Run("scanner", func(b *testing.B) { perLine(b, Mask) })
	b.Run("writer", func(b *testing.B) {
		w := Wrap(io.Discard)
		perLine(b, func(l []byte) []byte { _, _ = w.Write(l); return nil })
	})
}
