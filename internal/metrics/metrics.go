package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Label values. Every label is checked against its list, and anything else is counted as
// "other", so that no caller can put a number, a name or an ID into a label by mistake.
const (
	// Inbound texts (carebridge_inbound_messages_total{result}).
	InboundStored      = "stored"
	InboundRepeated    = "repeated"
	InboundMalformed   = "rejected_malformed"
	InboundOtherNumber = "rejected_other_number"
	InboundNotPhone    = "rejected_not_phone"
	InboundStoreFailed = "store_failed"
	// InboundCaughtUp is a text found in Twilio's message log that no webhook had stored.
	InboundCaughtUp = "caught_up"

	// Outbound staff messages (carebridge_outbound_messages_total{result}).
	OutboundSent        = "sent"
	OutboundFailed      = "failed"
	OutboundOptedOut    = "opted_out"
	OutboundTooLong     = "too_long"
	OutboundUnsupported = "unsupported"
	OutboundSecure      = "stored_secure"

	// Webhook rejections (carebridge_webhook_rejections_total{reason}); an inbound one
	// also counts as an inbound text with result "rejected_<reason>".
	RejectUnreadable    = "unreadable"
	RejectLookupFailed  = "lookup_failed"
	RejectUnknownNumber = "unknown_number"
	RejectTokenFailed   = "token_failed"
	RejectSignature     = "signature"
	RejectOtherAccount  = "other_account"

	// Twilio API operations (carebridge_twilio_request_duration_seconds{operation}).
	OpSend              = "send"
	OpLookupNumber      = "lookup_number"
	OpCheckAccount      = "check_account"
	OpConfigureWebhooks = "configure_webhooks"
	OpListMessages      = "list_messages"
	OpFetchMessage      = "fetch_message"

	other = "other"
)

var (
	inboundResults = words(InboundStored, InboundCaughtUp, "rejected_"+other, InboundRepeated, InboundMalformed, InboundOtherNumber, InboundNotPhone,
		InboundStoreFailed, "rejected_"+RejectUnreadable, "rejected_"+RejectLookupFailed, "rejected_"+RejectUnknownNumber,
		"rejected_"+RejectTokenFailed, "rejected_"+RejectSignature, "rejected_"+RejectOtherAccount)
	outboundResults = words(OutboundSent, OutboundFailed, OutboundOptedOut, OutboundTooLong, OutboundUnsupported, OutboundSecure)
	rejectReasons   = words(RejectUnreadable, RejectLookupFailed, RejectUnknownNumber, RejectTokenFailed, RejectSignature,
		RejectOtherAccount)
	webhooks     = words("inbound", "status")
	operations   = words(OpSend, OpLookupNumber, OpCheckAccount, OpConfigureWebhooks, OpListMessages, OpFetchMessage)
	codeFailures = words("wrong", "expired")
)

func words(list ...string) map[string]bool {
	set := make(map[string]bool, len(list))
	for _, w := range list {
		set[w] = true
	}
	return set
}

// label is value when it is on the list, otherwise "other".
func label(value string, allowed map[string]bool) string {
	if allowed[value] {
		return value
	}
	return other
}

// Gauges are the values read from the database when Prometheus scrapes.
type Gauges interface {
	// InboundQueue is called on each scrape: the pending inbound texts and when the
	// oldest of them arrived (zero when none is pending).
	InboundQueue(ctx context.Context) (pending int64, oldest time.Time, err error)
	// ActiveSessions is called on each scrape: the patient sessions open now.
	ActiveSessions(ctx context.Context) (int64, error)
}

// Metrics is carebridge's registry. Its methods are safe on a nil *Metrics (metrics
// off), so that callers need no check.
type Metrics struct {
	Registry *prometheus.Registry

	inbound           *prometheus.CounterVec
	inboundDeliveries *prometheus.CounterVec
	outbound          *prometheus.CounterVec
	deliveryFailures  *prometheus.CounterVec
	webhookRejections *prometheus.CounterVec
	twilio            *prometheus.HistogramVec
	codes             *prometheus.CounterVec
	codeFailures      *prometheus.CounterVec
	lockouts          prometheus.Counter
	firstReply        prometheus.Histogram
}

// New builds the registry with carebridge's metrics, the Go runtime's and the process's.
func New(gauges Gauges) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carebridge_inbound_messages_total",
			Help: "Patient texts received by webhook, by result (stored, repeated MessageSid, rejected_<reason>).",
		}, []string{"result"}),
		inboundDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carebridge_inbound_deliveries_total",
			Help: "Attempts to put a stored patient text into its room, by result (delivered, retry).",
		}, []string{"result"}),
		outbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carebridge_outbound_messages_total",
			Help: "Staff messages to patients, by result (sent, failed, opted_out, too_long, unsupported, stored_secure).",
		}, []string{"result"}),
		deliveryFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carebridge_delivery_failures_total",
			Help: "Texts Twilio refused or could not deliver, by Twilio error code (0: none given).",
		}, []string{"code"}),
		webhookRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carebridge_webhook_rejections_total",
			Help: "Twilio webhooks refused before their content was read, by webhook and reason.",
		}, []string{"webhook", "reason"}),
		twilio: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "carebridge_twilio_request_duration_seconds",
			Help:    "Duration of Twilio API requests (each attempt), by operation and outcome (ok, error).",
			Buckets: prometheus.ExponentialBuckets(0.025, 2, 11),
		}, []string{"operation", "outcome"}),
		codes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carebridge_secure_codes_total",
			Help: "One-time codes requested by patients, by result (sent, send_failed, rate_limited).",
		}, []string{"result"}),
		codeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carebridge_secure_code_failures_total",
			Help: "One-time codes entered that did not verify, by reason (wrong, expired).",
		}, []string{"reason"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "carebridge_secure_lockouts_total",
			Help: "Secure links locked after too many wrong codes.",
		}),
		firstReply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "carebridge_first_reply_seconds",
			Help: "Time from a patient's text to the first staff reply.",
			Buckets: []float64{30, 60, 120, 300, 600, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 24 * 3600,
				72 * 3600},
		}),
	}
	m.Registry.MustRegister(m.inbound, m.inboundDeliveries, m.outbound, m.deliveryFailures, m.webhookRejections,
		m.twilio, m.codes, m.codeFailures, m.lockouts, m.firstReply,
		newDatabaseCollector(gauges),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Inbound counts a patient text received by webhook.
func (m *Metrics) Inbound(result string) {
	if m != nil {
		m.inbound.WithLabelValues(label(result, inboundResults)).Inc()
	}
}

// InboundDelivery counts one attempt to put a stored text into its room.
func (m *Metrics) InboundDelivery(delivered bool) {
	if m != nil {
		m.inboundDeliveries.WithLabelValues(map[bool]string{true: "delivered", false: "retry"}[delivered]).Inc()
	}
}

// Outbound counts a staff message to a patient.
func (m *Metrics) Outbound(result string) {
	if m != nil {
		m.outbound.WithLabelValues(label(result, outboundResults)).Inc()
	}
}

// DeliveryFailure counts a text Twilio refused or failed with the given error code.
func (m *Metrics) DeliveryFailure(twilioCode int) {
	if m != nil {
		m.deliveryFailures.WithLabelValues(codeLabel(twilioCode)).Inc()
	}
}

// codeLabel is a Twilio error code as digits; Twilio's codes have at most 5.
func codeLabel(code int) string {
	if code <= 0 || code > 99999 {
		return "0"
	}
	return strconv.Itoa(code)
}

// WebhookRejected counts a webhook refused before its content was read; webhook is
// "inbound" or "status".
func (m *Metrics) WebhookRejected(webhook, reason string) {
	if m == nil {
		return
	}
	webhook, reason = label(webhook, webhooks), label(reason, rejectReasons)
	m.webhookRejections.WithLabelValues(webhook, reason).Inc()
	if webhook == "inbound" {
		m.Inbound("rejected_" + reason)
	}
}

// TwilioRequest observes one Twilio API request that started at start.
func (m *Metrics) TwilioRequest(operation string, start time.Time, err error) {
	if m != nil {
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		m.twilio.WithLabelValues(label(operation, operations), outcome).Observe(time.Since(start).Seconds())
	}
}

// CodeSent is called by the secure chat after texting a one-time code, or failing to.
func (m *Metrics) CodeSent(err error) {
	if m != nil {
		m.codes.WithLabelValues(map[bool]string{true: "sent", false: "send_failed"}[err == nil]).Inc()
	}
}

// CodeRateLimited is called by the secure chat when a code is refused by the hourly limit.
func (m *Metrics) CodeRateLimited() {
	if m != nil {
		m.codes.WithLabelValues("rate_limited").Inc()
	}
}

// CodeFailed is called by the secure chat for a code that did not verify ("wrong", "expired").
func (m *Metrics) CodeFailed(reason string) {
	if m != nil {
		m.codeFailures.WithLabelValues(label(reason, codeFailures)).Inc()
	}
}

// LinkLocked is called by the secure chat when wrong codes lock a link.
func (m *Metrics) LinkLocked() {
	if m != nil {
		m.lockouts.Inc()
	}
}

// FirstReply observes the time from a patient's text to the first staff reply.
func (m *Metrics) FirstReply(wait time.Duration) {
	if m != nil && wait >= 0 {
		m.firstReply.Observe(wait.Seconds())
	}
}
