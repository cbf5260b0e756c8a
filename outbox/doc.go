// Package outbox is the one way a text reaches a patient's phone. Staff replies, secure
// mode alerts, codes, templates, follow-ups and automatic replies all go through it: it
// applies the opt-out and size limits once, stores the text before anyone is told it was
// accepted, sends conversations concurrently and each conversation in order, retries only
// what Twilio certainly did not accept, and records Twilio's answer for status callbacks.
// It is the only package that calls Twilio (through sms): it also reads the message log
// for the texts and statuses webhooks missed, and checks a clinic number's account.
package outbox
