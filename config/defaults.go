package config

import (
	"fmt"
	"strings"
	"text/template"
)

// baseDefaults are the changes carebridge makes to mautrix's example of the bridgev2 part of
// the config, so that a freshly generated config is HIPAA-minded: encrypted rooms only,
// replies from staff without logins through the clinic number (relay), nobody outside the
// listed domains allowed to use the bridge, the embedded database, and synchronous portal
// event handling (a patient text is marked delivered only once it is in the room).
var baseDefaults = []struct{ old, new string }{
	{"    allow: false\n    # Whether to force-enable encryption", "    allow: true\n    # Whether to force-enable encryption"},
	{"    # Whether to force-enable encryption in all bridged rooms.\n    default: false",
		"    # Whether to force-enable encryption in all bridged rooms.\n    default: true"},
	{"    # Whether to require all messages to be encrypted and drop any unencrypted messages.\n    require: false",
		"    # Whether to require all messages to be encrypted and drop any unencrypted messages.\n" +
			"    # carebridge refuses to start when this is true and the build has no encryption.\n    require: true"},
	{"        # authenticated user into a relaybot for that chat.\n        enabled: false",
		"        # authenticated user into a relaybot for that chat.\n" +
			"        # carebridge sets the clinic number's login as the relay of each conversation it creates,\n" +
			"        # so staff without a login of their own reply through the clinic number.\n        enabled: true"},
	{"    portal_event_buffer: 64",
		"    # carebridge handles each room's events in its own queue (in order within a room, rooms\n" +
			"    # in parallel) and uses at least 64.\n    portal_event_buffer: 64"},
	{"    deduplicate_matrix_messages: false",
		"    # carebridge requires true: a transaction the homeserver sends again after a crash\n" +
			"    # must not text a staff message twice.\n    deduplicate_matrix_messages: true"},
	{"        \"*\": relay\n", "        # Users of other servers (federation) may not use the bridge unless listed here.\n        \"*\": block\n"},
	{"    type: postgres\n", "    type: sqlite3-fk-wal\n"},
	{"    max_idle_conns: 1\n", "    # carebridge: as many as max_open_conns. With one, every burst of work closed the\n" +
		"    # connections it opened and the next burst opened them again (a process each on PostgreSQL).\n" +
		"    max_idle_conns: 5\n"},
	{"    uri: postgres://user:password@host/database?sslmode=disable",
		"    # carebridge's default is the embedded SQLite file; use PostgreSQL in production.\n" +
			"    # On SQLite, _txlock=immediate is required; _stmt_cache_size keeps each connection's\n" +
			"    # prepared statements (a fifth less of the bridge's CPU under a burst of staff texts).\n" +
			"    uri: file:carebridge.db?_txlock=immediate&_stmt_cache_size=128"},
	{`            m.text: "<b>{{ .Sender.DisambiguatedName }}</b>: {{ .Message }}"`,
		"            # carebridge: relayed texts become SMS, so no HTML bold around the name.\n" +
			`            m.text: "{{ .Sender.DisambiguatedName }}: {{ .Message }}"`},
	{`            m.notice: "<b>{{ .Sender.DisambiguatedName }}</b>: {{ .Message }}"`,
		`            m.notice: "{{ .Sender.DisambiguatedName }}: {{ .Message }}"`},
	{`            m.emote: "* <b>{{ .Sender.DisambiguatedName }}</b> {{ .Message }}"`,
		`            m.emote: "* {{ .Sender.DisambiguatedName }} {{ .Message }}"`},
	{"    message_status_events: false", "    # carebridge: Beeper's com.beeper.message_send_status events, which Element does not show;\n" +
		"    # each is a room event (two more per staff text). Element users see a text's state without\n" +
		"    # them: the patient's read receipt when a text was delivered, and an encrypted notice\n" +
		"    # when it failed.\n" +
		"    message_status_events: false"},
	{"    message_error_notices: true", "    # carebridge requires false: bridgev2's notices are not encrypted. carebridge posts its own,\n" +
		"    # end-to-end encrypted, for every message it could not send.\n" +
		"    message_error_notices: false"},
	{`            m.file: "<b>{{ .Sender.DisambiguatedName }}</b> sent a file`, `            m.file: "{{ .Sender.DisambiguatedName }} sent a file`},
	{`            m.image: "<b>{{ .Sender.DisambiguatedName }}</b> sent an image`, `            m.image: "{{ .Sender.DisambiguatedName }} sent an image`},
	{`            m.audio: "<b>{{ .Sender.DisambiguatedName }}</b> sent an audio file`, `            m.audio: "{{ .Sender.DisambiguatedName }} sent an audio file`},
	{`            m.video: "<b>{{ .Sender.DisambiguatedName }}</b> sent a video`, `            m.video: "{{ .Sender.DisambiguatedName }} sent a video`},
	{`            m.location: "<b>{{ .Sender.DisambiguatedName }}</b> sent a location`, `            m.location: "{{ .Sender.DisambiguatedName }} sent a location`},
	{"    # Whether to enable encryption at all.", "    # Federation: rooms carry patient conversations; keep the homeserver's federation\n" +
		"    # limited to the servers of organisations you refer patients to.\n    # Whether to enable encryption at all."},
}

// HardenBaseExample applies carebridge's defaults to mautrix's example config (the
// bridgev2 part). It fails when mautrix's example no longer has a line it expects, so an
// upgrade of mautrix cannot silently drop a safeguard.
func HardenBaseExample(base string) (string, error) {
	for _, d := range baseDefaults {
		if n := strings.Count(base, d.old); n != 1 {
			return "", fmt.Errorf("mautrix example config changed: expected one %q, found %d", firstLine(d.old), n)
		}
		base = strings.Replace(base, d.old, d.new, 1)
	}
	return base, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// FullExample renders the whole example config that `carebridge -e` writes: the network
// section followed by the hardened bridgev2 part. mxmain parses its example template once
// at package initialisation and has no hook to change it, so carebridge renders the same
// template (same delimiters, same data) from the hardened text itself.
func FullExample(mautrixBase, networkExample string, templateData any) (string, error) {
	hardened, err := HardenBaseExample(mautrixBase)
	if err != nil {
		return "", err
	}
	tpl, err := template.New("example-config.yaml").Delims("$<<", ">>").Parse(hardened)
	if err != nil {
		return "", fmt.Errorf("failed to parse example config template: %w", err)
	}
	var buf strings.Builder
	buf.WriteString("# Network-specific config options\nnetwork:\n")
	for line := range strings.SplitSeq(networkExample, "\n") {
		buf.WriteString("    " + line + "\n")
	}
	buf.WriteString("\n")
	if err = tpl.Execute(&buf, templateData); err != nil {
		return "", fmt.Errorf("failed to render example config: %w", err)
	}
	return buf.String(), nil
}
