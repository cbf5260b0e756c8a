package workflow

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Templates (quick replies): network.templates, listed by `!sms t` and filled in for one
// patient by `!sms t NAME`.

// TemplateList is the reply to `!sms t`: every template with its text, by name.
func TemplateList(templates map[string]string, commandPrefix string) string {
	if len(templates) == 0 {
		return "This clinic has no templates: IT can add them under `network.templates` in the bridge config."
	}
	names := make([]string, 0, len(templates))
	for name := range templates {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "Templates (send one with `%s t NAME`):\n", commandPrefix)
	for _, name := range names {
		fmt.Fprintf(&b, "\n* `%s`: %s", name, templates[name])
	}
	return b.String()
}

// NeedsLink says whether a template has {link}: filling it in issues a secure chat link.
func NeedsLink(text string) bool { return strings.Contains(text, "{link}") }

// FillTemplate replaces the placeholders; an unknown patient name leaves no gap ("Hi
// {patient_name}, your…" becomes "Hi, your…").
func FillTemplate(text, patientName, clinicName, link string) string {
	text = strings.ReplaceAll(text, "{clinic_name}", clinicName)
	text = strings.ReplaceAll(text, "{link}", link)
	if patientName != "" {
		return strings.ReplaceAll(text, "{patient_name}", patientName)
	}
	if !strings.Contains(text, "{patient_name}") {
		return text
	}
	text = noNameGap.ReplaceAllString(text, "$1")
	text = strings.TrimLeft(strings.ReplaceAll(text, "{patient_name}", ""), " ,")
	text = strings.Join(strings.Fields(text), " ")
	if r, size := utf8.DecodeRuneInString(text); size > 0 && unicode.IsLower(r) {
		text = string(unicode.ToUpper(r)) + text[size:]
	}
	return text
}

// noNameGap is a missing name with the space before it: "Hi {patient_name}," → "Hi,".
var noNameGap = regexp.MustCompile(` +\{patient_name\}([,.!?:;]?)`)
