package conversation

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"maunium.net/go/mautrix/event"
)

func TestPatientTextHasNoMarkdownOrPills(t *testing.T) {
	for _, tc := range []struct{ name, body, html, want string }{
		{"plain", "Please come in at 3pm.", "", "Please come in at 3pm."},
		{"bold and italics", "**Fasting** from _midnight_", "<strong>Fasting</strong> from <em>midnight</em>", "Fasting from midnight"},
		{"link", "See [your results](https://clinic.example/r)", `See <a href="https://clinic.example/r">your results</a>`,
			"See your results (https://clinic.example/r)"},
		{"bare link", "https://clinic.example", `<a href="https://clinic.example">https://clinic.example</a>`, "https://clinic.example"},
		{"user pill", "Kim will call you", `<a href="https://matrix.to/#/@kim:clinic.example">Kim</a> will call you`, "Kim will call you"},
		{"strike and code", "~~2pm~~ `3pm`", "<del>2pm</del> <code>3pm</code>", "2pm 3pm"},
		{"code block", "```\nline 1\nline 2\n```", "<pre><code>line 1\nline 2\n</code></pre>", "line 1\nline 2"},
		{"spoiler", "||results||", "<span data-mx-spoiler>results</span>", "results"},
		{"paragraphs", "One\n\nTwo", "<p>One</p><p>Two</p>", "One\n\nTwo"},
		{"relayed", "nurse: **Bold**", "nurse: <strong>Bold</strong>", "nurse: Bold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := &event.MessageEventContent{MsgType: event.MsgText, Body: tc.body}
			if tc.html != "" {
				content.Format, content.FormattedBody = event.FormatHTML, tc.html
			}
			assert.Equal(t, tc.want, PatientText(context.Background(), content))
		})
	}
}
