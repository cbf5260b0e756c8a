package conversation

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
)

// What a patient reads of a staff message written with formatting (Element sends markdown as
// the body and HTML as the formatted body): the HTML turned into plain text, without the
// marks a phone would show as they are. Bold, italics, strike-through and code are their
// text; a link is "text (address)"; a user pill is the display name it shows; a code block
// is its code; a spoiler is its text.
var patientTextParser = &format.HTMLParser{
	TabsToSpaces:            4,
	Newline:                 "\n",
	HorizontalLine:          "\n---\n",
	PillConverter:           format.DefaultPillConverter,
	BoldConverter:           keepText,
	ItalicConverter:         keepText,
	StrikethroughConverter:  keepText,
	UnderlineConverter:      keepText,
	MonospaceConverter:      keepText,
	SpoilerConverter:        func(text, _ string, _ format.Context) string { return text },
	MonospaceBlockConverter: func(code, _ string, _ format.Context) string { return strings.TrimRight(code, "\n") },
}

func keepText(text string, _ format.Context) string { return text }

// PatientText is a staff message's text as the patient gets it (SMS or the secure chat):
// the formatted body in plain text when there is one, else the body.
func PatientText(ctx context.Context, content *event.MessageEventContent) string {
	if content.Format != event.FormatHTML || content.FormattedBody == "" {
		return content.Body
	}
	return strings.TrimSpace(patientTextParser.Parse(content.FormattedBody, format.NewContext(ctx)))
}
