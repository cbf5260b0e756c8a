package bridge

import (
	"context"
	"fmt"
	"html"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/outbox"
)

// The automatic answers to a patient's text: the emergency reply and the after-hours
// reply. Both are fixed texts without PHI, so they go by SMS even in secure mode (the
// patient may not have the secure chat open), and never to a number that opted out.

// emergencyReplyInterval is how long a conversation's emergency reply is not repeated:
// a patient who writes "chest pain" three times gets one reply (every match still marks
// the conversation urgent).
const emergencyReplyInterval = 10 * time.Minute

// emergencyReplies holds when each conversation last got the emergency reply. It lives in
// memory (one bridge process holds the appservice): after a restart a repeated phrase may
// get the reply once more, which is harmless.
var emergencyReplies = struct {
	sync.Mutex
	last map[string]time.Time
}{last: map[string]time.Time{}}

// claimEmergencyReply takes the right to text the emergency reply now; release undoes it.
func claimEmergencyReply(conv *database.Conversation, now time.Time) (claimed bool, release func()) {
	key := conv.LoginID + "/" + conv.PortalID
	emergencyReplies.Lock()
	defer emergencyReplies.Unlock()
	for k, at := range emergencyReplies.last {
		if now.Sub(at) >= emergencyReplyInterval || at.After(now.Add(emergencyReplyInterval)) {
			delete(emergencyReplies.last, k)
		}
	}
	if _, recent := emergencyReplies.last[key]; recent {
		return false, nil
	}
	emergencyReplies.last[key] = now
	return true, func() {
		emergencyReplies.Lock()
		defer emergencyReplies.Unlock()
		if emergencyReplies.last[key].Equal(now) {
			delete(emergencyReplies.last, key)
		}
	}
}

// foldText prepares text for phrase matching: lower case, accents and apostrophes
// (’ ' ` ´) dropped, and everything that is not a letter or digit a word break. So "Can’t
// breathe!!" matches "can't breathe" and "dolor de pécho" matches "dolor de pecho".
func foldText(s string) []string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch r {
		case '\'', '’', '‘', '`', '´', 'ʼ':
			continue
		}
		if folded, ok := accentFold[r]; ok {
			r = folded
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte(' ')
		}
	}
	return strings.Fields(b.String())
}

var accentFold = map[rune]rune{
	'á': 'a', 'à': 'a', 'â': 'a', 'ä': 'a', 'ã': 'a',
	'é': 'e', 'è': 'e', 'ê': 'e', 'ë': 'e',
	'í': 'i', 'ì': 'i', 'î': 'i', 'ï': 'i',
	'ó': 'o', 'ò': 'o', 'ô': 'o', 'ö': 'o', 'õ': 'o',
	'ú': 'u', 'ù': 'u', 'û': 'u', 'ü': 'u',
	'ñ': 'n', 'ç': 'c',
}

// matchEmergency returns the first configured phrase that body contains as whole words
// ("stroke" matches "I think it's a stroke", not "heatstroke"), or "".
func matchEmergency(phrases []string, body string) string {
	words := foldText(body)
	for _, phrase := range phrases {
		want := foldText(phrase)
		if len(want) == 0 {
			continue
		}
		for i := 0; i+len(want) <= len(words); i++ {
			match := true
			for j, w := range want {
				if words[i+j] != w {
					match = false
					break
				}
			}
			if match {
				return phrase
			}
		}
	}
	return ""
}

// checkEmergency answers a text containing an emergency phrase and marks it urgent.
func (c *Connector) checkEmergency(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, conv *database.Conversation, body string) {
	phrase := matchEmergency(c.Config.Emergency.Phrases, body)
	if phrase == "" {
		return
	}
	log := zerolog.Ctx(ctx).With().Str("action", "emergency reply").Str("portal_id", conv.PortalID).Logger()
	ctx = log.WithContext(ctx)
	if err := c.markUrgent(ctx, portal, conv, "system", true); err != nil {
		log.Err(err).Msg("Failed to mark the conversation urgent")
	}
	claimed, release := claimEmergencyReply(conv, c.now())
	if !claimed {
		log.Debug().Msg("Emergency reply already sent within the interval")
		return
	}
	var outcome, audit string
	switch err := c.textPatient(ctx, conv, outbox.KindAutoReply, c.Config.Render(c.Config.Emergency.Reply), ""); {
	case err == nil:
		outcome, audit = "The emergency reply (call 911) was texted to the patient.", "ok"
	case conv.OptedOut:
		outcome, audit = "The patient has opted out (STOP): no emergency reply was texted. Call them if you can.", "opted out"
	default:
		release()
		log.Err(err).Msg("Failed to text the emergency reply")
		outcome, audit = "The emergency reply could not be texted ("+describeSendError(err)+"). Call the patient if you can.", "failed"
	}
	if err := c.audited(ctx, convAudit(conv, "system", "emergency reply sent", audit, ""), nil); err != nil {
		log.Err(err).Msg("Failed to audit the emergency reply")
	}
	c.noticeOnCall(ctx, portal, fmt.Sprintf("🚨 Possible emergency: the patient's message contains “%s”. "+
		"This conversation is marked urgent. %s", phrase, outcome))
}

// checkAfterHours texts the after-hours reply outside business hours (once per closed period).
func (c *Connector) checkAfterHours(ctx context.Context, login *bridgev2.UserLogin, portal *bridgev2.Portal, conv *database.Conversation) {
	log := zerolog.Ctx(ctx).With().Str("action", "after-hours reply").Str("portal_id", conv.PortalID).Logger()
	ctx = log.WithContext(ctx)
	hours, err := parseBusinessHours(&c.Config.BusinessHours)
	if err != nil {
		log.Err(err).Msg("Failed to read business hours")
		return
	}
	now := c.now()
	state := hours.at(now)
	if state.Open {
		return
	}
	claimed, err := c.DB.Conversation.ClaimAfterHours(ctx, conv.LoginID, conv.PortalID, now, state.ClosedSince)
	if err != nil {
		log.Err(err).Msg("Failed to claim the after-hours reply")
		return
	} else if !claimed {
		log.Debug().Msg("After-hours reply already sent in this closed period")
		return
	}
	lang := c.Config.SecureChat.Language
	opens := opensAgainText(lang, now, state.OpensAt, hours.loc)
	text := c.Config.Render(afterHoursReply(lang, c.Config.BusinessHours.AfterHoursReply))
	if opens != "" {
		text += " " + opens
	}
	var outcome, audit string
	switch err = c.textPatient(ctx, conv, outbox.KindAutoReply, text, ""); {
	case err == nil:
		outcome, audit = "The after-hours reply was texted to the patient.", "ok"
	case conv.OptedOut:
		outcome, audit = "The patient has opted out (STOP): no after-hours reply was texted.", "opted out"
	default:
		log.Err(err).Msg("Failed to text the after-hours reply")
		if err = c.DB.Conversation.ReleaseAfterHours(ctx, conv.LoginID, conv.PortalID, now, conv.AfterHoursAt); err != nil {
			log.Err(err).Msg("Failed to release the after-hours claim")
		}
		outcome, audit = "The after-hours reply could not be texted; the patient's next message tries again.", "failed"
	}
	if err = c.audited(ctx, convAudit(conv, "system", "after-hours reply sent", audit, ""), nil); err != nil {
		log.Err(err).Msg("Failed to audit the after-hours reply")
	}
	when := ""
	if !state.OpensAt.IsZero() {
		when = " (" + opensAgainText("en", now, state.OpensAt, hours.loc) + ")"
	}
	c.noticeOnCall(ctx, portal, "🌙 After hours: the patient wrote while the clinic is closed"+when+". "+outcome)
}

// defaultAfterHoursReply is example-config.yaml's after_hours_reply. A clinic that kept it
// and set secure_chat.language to es gets the Spanish wording; a clinic that wrote its own
// reply gets its own words, in whatever language it wrote them.
const defaultAfterHoursReply = "{clinic_name} is closed now. We will answer when we open. For emergencies call 911."

func afterHoursReply(lang, configured string) string {
	if lang == "es" && strings.TrimSpace(configured) == defaultAfterHoursReply {
		return "{clinic_name} está cerrado ahora. Le responderemos cuando abramos. Para emergencias llame al 911."
	}
	return configured
}

// noticeOnCall posts a notice that mentions the on-call staff (m.mentions and their IDs
// in the body, so every client notifies them).
func (c *Connector) noticeOnCall(ctx context.Context, portal *bridgev2.Portal, text string) {
	_, err := c.Bridge.Bot.SendMessage(ctx, portal.MXID, event.EventMessage, &event.Content{
		Parsed: mentionNotice(text, c.Config.OnCall),
	}, nil)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to send notice to conversation room")
	}
}

// mentionNotice is a notice ending with "On call: @a:server @b:server" as pills.
func mentionNotice(text string, onCall []string) *event.MessageEventContent {
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: text, Mentions: &event.Mentions{}}
	if len(onCall) == 0 {
		return content
	}
	pills := make([]string, 0, len(onCall))
	for _, mxid := range onCall {
		userID := id.UserID(mxid)
		content.Mentions.UserIDs = append(content.Mentions.UserIDs, userID)
		pills = append(pills, fmt.Sprintf(`<a href="%s">%s</a>`, html.EscapeString(userID.URI().MatrixToURL()), html.EscapeString(mxid)))
	}
	content.Body = text + " On call: " + strings.Join(onCall, " ")
	content.Format = event.FormatHTML
	content.FormattedBody = html.EscapeString(text) + " On call: " + strings.Join(pills, " ")
	return content
}
