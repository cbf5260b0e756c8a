// Package twiliosim is a simulated Twilio for `make demo` and tests: an sms.Provider that
// keeps texts in memory, shows them on a phone web page where someone plays the patient,
// delivers the patient's texts to the bridge as signed Twilio webhooks and posts signed
// status callbacks for the bridge's texts. It sends no real SMS; never use it for patients.
package twiliosim
