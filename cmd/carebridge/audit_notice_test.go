package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/carebridge/carebridge/internal/testenv"
)

// auditHeadNotice is the notice's form: the head on its own first line, then counts.
var auditHeadNotice = regexp.MustCompile(`^Audit log head: (\d+:[0-9a-f]{64})\n\d+ rows verified, (newest at \S+|the log is empty)\. ` +
	"Keep this notice: `carebridge audit verify --expect " + `\d+:[0-9a-f]{64}` + "` shows that the log still holds it\\.$")

// TestAuditHeadNotice runs the real system, once per database: with network.audit.head_room
// set to an encrypted admin room the bridge bot was invited to, the room receives the audit
// log's head as an end-to-end encrypted notice, the same head `carebridge audit head`
// prints; when the log grows, the new head follows within the interval, and the log still
// holds every head the room received.
func TestAuditHeadNotice(t *testing.T) { eachDB(t, runAuditHeadNotice) }

func runAuditHeadNotice(t *testing.T, kind string) {
	e, nurse, _, ctx := linkedEnv(t, kind, nil)
	admin, err := nurse.CreateRoom(ctx, []string{bridgeBotID(t, e.br)}, true)
	require.NoError(t, err)

	e.br.Stop()
	e.br.EditConfig(func(cfg map[string]any) {
		cfg["network"].(map[string]any)["audit"] = map[string]any{"head_room": admin, "head_interval": "1s"}
	})
	e.br.Restart()

	head := func() string {
		stdout, stderr, code := runCarebridge(t, e.br, "audit", "head", "-c", e.br.ConfigPath())
		require.Equal(t, 0, code, stderr)
		return strings.TrimSpace(stdout)
	}
	posted := func(want string) {
		t.Helper()
		m, err := nurse.WaitMessage(ctx, func(m testenv.AgentMessage) bool {
			return m.RoomID == admin && m.MsgType == "m.notice" && strings.HasPrefix(m.Body, "Audit log head: "+want+"\n")
		})
		require.NoError(t, err, "the admin room receives head %s", want)
		assert.True(t, m.Encrypted, "the head notice is end-to-end encrypted")
		match := auditHeadNotice.FindStringSubmatch(m.Body)
		require.NotNil(t, match, "the notice holds the head and counts only: %q", m.Body)
		assert.Equal(t, want, match[1])
	}

	first := head()
	assert.NotEqual(t, "0:"+strings.Repeat("0", 64), first, "linking the clinic number is audited")
	posted(first)

	// An export is audited: the log's head moves, and the room follows.
	out := e.br.ConfigPath() + ".export.jsonl"
	_, stderr, code := runCarebridge(t, e.br, "audit", "export", "-c", e.br.ConfigPath(), "--since", "2020-01-01", "--output", out)
	require.Equal(t, 0, code, stderr)
	second := head()
	require.NotEqual(t, first, second)
	posted(second)

	stdout, stderr, code := runCarebridge(t, e.br, "audit", "verify", "-c", e.br.ConfigPath(), "--expect", first, "--expect", second)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, fmt.Sprintf("The log holds the kept head %s.", second))
	for _, m := range nurse.Messages() {
		if m.RoomID == admin {
			assert.True(t, m.Encrypted, "everything in the admin room is encrypted: %q", m.Body)
		}
	}
}

// bridgeBotID is the bridge bot's Matrix ID, from the bridge's config.
func bridgeBotID(t *testing.T, br *testenv.Bridge) string {
	t.Helper()
	raw, err := os.ReadFile(br.ConfigPath())
	require.NoError(t, err)
	var cfg struct {
		Homeserver struct {
			Domain string `yaml:"domain"`
		} `yaml:"homeserver"`
		AppService struct {
			Bot struct {
				Username string `yaml:"username"`
			} `yaml:"bot"`
		} `yaml:"appservice"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &cfg))
	return "@" + cfg.AppService.Bot.Username + ":" + cfg.Homeserver.Domain
}
