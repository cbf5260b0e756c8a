package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds the database reads of one scrape.
const scrapeTimeout = 2 * time.Second

var (
	queueDepthDesc = prometheus.NewDesc("carebridge_inbound_queue_depth",
		"Patient texts stored but not yet in their room.", nil, nil)
	queueAgeDesc = prometheus.NewDesc("carebridge_inbound_queue_oldest_age_seconds",
		"Age of the oldest patient text not yet in its room (0 when none is waiting).", nil, nil)
	sessionsDesc = prometheus.NewDesc("carebridge_secure_sessions_active",
		"Patient secure chat sessions open now.", nil, nil)
)

// databaseCollector reads the gauges from the database on each scrape, so that they are
// right across restarts and across several processes sharing one database.
type databaseCollector struct {
	gauges Gauges
}

func newDatabaseCollector(gauges Gauges) prometheus.Collector {
	return &databaseCollector{gauges: gauges}
}

// Describe is called when the collector is registered.
func (c *databaseCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueAgeDesc
	ch <- sessionsDesc
}

// Collect is called on each scrape. A failed read reports an invalid metric, which the
// handler logs and leaves out, and the other metrics are still served.
func (c *databaseCollector) Collect(ch chan<- prometheus.Metric) {
	if c.gauges == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	pending, oldest, err := c.gauges.InboundQueue(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueDepthDesc, err)
	} else {
		age := 0.0
		if !oldest.IsZero() {
			age = max(time.Since(oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, float64(pending))
		ch <- prometheus.MustNewConstMetric(queueAgeDesc, prometheus.GaugeValue, age)
	}
	if sessions, err := c.gauges.ActiveSessions(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(sessionsDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(sessions))
	}
}
