package securechat

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCatalogsHaveTheSameKeys(t *testing.T) {
	verb := regexp.MustCompile(`%[a-z]`)
	for key, en := range catalogs[langEnglish] {
		es, ok := catalogs[langSpanish][key]
		if assert.True(t, ok, "Spanish lacks %q", key) {
			assert.Equal(t, verb.FindAllString(en, -1), verb.FindAllString(es, -1), "the same arguments in %q", key)
		}
	}
	for key := range catalogs[langSpanish] {
		_, ok := catalogs[langEnglish][key]
		assert.True(t, ok, "English lacks %q", key)
	}
}

func TestTemplatesUseKnownKeys(t *testing.T) {
	key := regexp.MustCompile(`\.T "([a-z_.]+)"`)
	entries, err := assetFS.ReadDir("assets/templates")
	assert.NoError(t, err)
	for _, entry := range entries {
		data, err := assetFS.ReadFile("assets/templates/" + entry.Name())
		assert.NoError(t, err)
		for _, m := range key.FindAllStringSubmatch(string(data), -1) {
			_, ok := catalogs[langEnglish][m[1]]
			assert.True(t, ok, "%s uses unknown key %q", entry.Name(), m[1])
		}
	}
	assert.Equal(t, "[missing: nope]", translate(langEnglish, "nope"))
}

func TestAcceptLanguage(t *testing.T) {
	for header, want := range map[string]string{
		"":                                    "",
		"es":                                  "es",
		"es-MX,es;q=0.9,en-US;q=0.8,en;q=0.7": "es",
		"en-US,en;q=0.9,es;q=0.8":             "en",
		"fr-FR,fr;q=0.9,es;q=0.5,en;q=0.4":    "es",
		"fr-CA":                               "",
		"en;q=0.2, ES;q=0.8":                  "es",
		"es;q=0":                              "",
		"*":                                   "",
		"es-419":                              "es",
		"es-ES;q=0.9, en-GB;q=0.95":           "en",
		"en-GB":                               "en",
		"ca-ES,ca;q=0.9":                      "",
		"de-DE, garbage;;q=x":                 "",
	} {
		assert.Equal(t, want, acceptLanguage(header), header)
	}
}

func TestFormatting(t *testing.T) {
	newYork, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	at := time.Date(2026, 3, 9, 19, 4, 0, 0, time.UTC) // 3:04 PM in New York (EDT)
	assert.Equal(t, "Mar 9, 3:04 PM", formatTime(langEnglish, at, newYork), "the clinic's zone, whatever the server's")
	assert.Equal(t, "9 mar, 15:04", formatTime(langSpanish, at, newYork))
	assert.Equal(t, "Mar 9, 7:04 PM", formatTime(langEnglish, at, nil), "UTC when no zone is set")
	late := time.Date(2026, 12, 2, 6, 21, 0, 0, time.UTC)
	assert.Equal(t, "Dec 2, 1:21 AM", formatTime(langEnglish, late, newYork))
	assert.Equal(t, "512 B", formatSize(512))
	assert.Equal(t, "35 KB", formatSize(35_200))
	assert.Equal(t, "2.5 MB", formatSize(2_500_000))
	assert.Equal(t, "(555) 000-1111", displayPhone("+15550001111"))
	assert.Equal(t, "+447700900123", displayPhone("+447700900123"))
	assert.True(t, isE164("+15550001111"))
	for _, bad := range []string{"", "15550001111", "+1555abc1111", "+1", "+15550001111\"><script>"} {
		assert.False(t, isE164(bad), bad)
	}
	assert.Equal(t, "Riverside Clinic sent you a secure message", translate(langEnglish, "link.heading", "Riverside Clinic"))
	assert.False(t, strings.Contains(translate(langSpanish, "chat.you"), "You"))
}
