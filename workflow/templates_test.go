package workflow

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTemplateFillsInPatientClinicAndLinkAndLeavesNoGapForAnUnknownName(t *testing.T) {
	tests := []struct {
		name, text, patient, want string
	}{
		{"known name", "Hi {patient_name}, your appointment at {clinic_name} is confirmed.", "Maria Lopez",
			"Hi Maria Lopez, your appointment at Evergreen Family Practice is confirmed."},
		{"unknown name mid-sentence", "Hi {patient_name}, your appointment at {clinic_name} is confirmed.", "",
			"Hi, your appointment at Evergreen Family Practice is confirmed."},
		{"unknown name first", "{patient_name}, please call us back.", "", "Please call us back."},
		{"unknown name last", "Thank you {patient_name}!", "", "Thank you!"},
		{"link", "Read it here: {link}", "", "Read it here: https://chat.evergreen.example/s/abc"},
		{"no placeholder", "We received your form.", "Maria Lopez", "We received your form."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, FillTemplate(tt.text, tt.patient, "Evergreen Family Practice", "https://chat.evergreen.example/s/abc"))
		})
	}
	assert.True(t, NeedsLink("Read it here: {link}"))
	assert.False(t, NeedsLink("Hi {patient_name}"))
}

func TestTemplateListShowsEveryTemplateByNameOrTellsITHowToAddThem(t *testing.T) {
	list := TemplateList(map[string]string{
		"labs":  "Your lab results are in: {link}",
		"flu":   "Flu shots are available at {clinic_name} this week.",
		"delay": "We are running 20 minutes late today.",
	}, "!sms")
	assert.Equal(t, "Templates (send one with `!sms t NAME`):\n"+
		"\n* `delay`: We are running 20 minutes late today."+
		"\n* `flu`: Flu shots are available at {clinic_name} this week."+
		"\n* `labs`: Your lab results are in: {link}", list)
	assert.Contains(t, TemplateList(nil, "!sms"), "`network.templates`")
}
