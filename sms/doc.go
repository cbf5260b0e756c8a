// Package sms is carebridge's side of Twilio: sending through the REST API (twilio-go),
// reading and signature-checking inbound webhooks, phone number handling, and the
// Provider interface the bridge sends through.
package sms
