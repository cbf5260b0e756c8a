// Package securechat is the patient side of secure mode: access links, one-time codes,
// sessions, the sealed copy of the conversation, and the mobile web pages. It knows
// nothing of Matrix or Twilio: the bridge supplies a Backend that texts and forwards.
package securechat
