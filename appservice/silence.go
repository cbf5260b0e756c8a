package appservice

import (
	"context"

	"maunium.net/go/mautrix/pushrules"
)

// PushRuleSetter is the part of a Matrix client that turns a push rule on or off.
type PushRuleSetter interface {
	SetPushRuleEnabled(ctx context.Context, scope string, kind pushrules.PushRuleType, ruleID string, enabled bool) error
}

// masterRule is the spec's rule that, when enabled, notifies for nothing.
const masterRule = ".m.rule.master"

// Silence turns a bridge user's notifications off (the bot's, a patient's ghost's): nobody
// reads as them, yet with the default rules the homeserver evaluates every staff message in
// their rooms as a notification for each of them and stores it with their unread counts.
// Measured on Dendrite 0.13.8 in make bench (profiles of the homeserver in the baseline and
// outbound phases): for each staff text, a notification row and an unread-count update for
// the bot and for the ghost, each a committed write, and a wake-up of the bot's /sync. With
// the master rule enabled the homeserver stops at that rule.
func Silence(ctx context.Context, user PushRuleSetter) error {
	return user.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, masterRule, true)
}
