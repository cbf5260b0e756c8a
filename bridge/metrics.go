package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"time"

	"maunium.net/go/mautrix/bridgev2/matrix"

	"github.com/carebridge/carebridge/internal/metrics"
	"github.com/carebridge/carebridge/sms"
)

// maxQueueAge is how old the oldest inbound text not yet in its room may be before
// /readyz reports delivery as stuck. A variable so that tests can shorten it.
var maxQueueAge = 5 * time.Minute

// startMetrics builds the registry and serves it with the health checks when
// network.metrics.listen is set; otherwise c.metrics stays nil and counts nothing.
func (c *Connector) startMetrics() error {
	if c.Config.Metrics.Listen == "" {
		return nil
	}
	log := c.Bridge.Log.With().Str("component", "metrics").Logger()
	m := metrics.New(metricsGauges{c})
	handler := m.Handler(c.readinessChecks(), log)
	if c.Config.Metrics.Pprof {
		handler = metrics.WithProfiling(handler)
		log.Warn().Msg("The profiler is on (network.metrics.pprof): keep the metrics listener private")
	}
	server, err := metrics.Listen(c.Config.Metrics.Listen, handler, log)
	if err != nil {
		return err
	}
	c.metrics, c.metricsServer = m, server
	return nil
}

// stopMetrics closes the metrics listener.
func (c *Connector) stopMetrics() {
	c.metricsServer.Close()
}

// metricsGauges reads the gauges computed on each scrape from the database.
type metricsGauges struct{ c *Connector }

func (g metricsGauges) InboundQueue(ctx context.Context) (int64, time.Time, error) {
	state, err := g.c.DB.InboundQueueState(ctx)
	return state.Pending, state.OldestReceived, err
}

func (g metricsGauges) ActiveSessions(ctx context.Context) (int64, error) {
	return g.c.DB.ActiveSessions(ctx, time.Now(), g.c.Config.SecureChat.SessionIdle)
}

// readinessChecks are /readyz's: the database answers, the homeserver answers, and no
// patient text has waited for its room longer than maxQueueAge.
func (c *Connector) readinessChecks() []metrics.Check {
	return []metrics.Check{
		{Name: "database", Run: func(ctx context.Context) error {
			return c.DB.RawDB.PingContext(ctx)
		}},
		{Name: "homeserver", Run: c.checkHomeserver},
		{Name: "inbound_queue", Run: func(ctx context.Context) error {
			state, err := c.DB.InboundQueueState(ctx)
			if err != nil {
				return err
			}
			if age := time.Since(state.OldestReceived); state.Pending > 0 && age > maxQueueAge {
				return fmt.Errorf("%d texts pending, the oldest for %s", state.Pending, age.Round(time.Second))
			}
			return nil
		}},
	}
}

// checkHomeserver asks the homeserver for /_matrix/client/versions, through the
// appservice's own HTTP client (which knows unix sockets).
func (c *Connector) checkHomeserver(ctx context.Context) error {
	mc, ok := c.Bridge.Matrix.(*matrix.Connector)
	if !ok || mc.Bot == nil {
		return errors.New("no homeserver connection")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mc.Bot.BuildClientURL("versions"), nil)
	if err != nil {
		return err
	}
	resp, err := mc.Bot.Client.Client.Do(req)
	if err != nil {
		return fmt.Errorf("unreachable: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// webhookRejected counts a Twilio webhook refused for reason; the path names the webhook.
func (c *Connector) webhookRejected(r *http.Request, reason string) {
	c.metrics.WebhookRejected(path.Base(r.URL.Path), reason)
}

// sendFailure counts a send Twilio refused, by its error code.
func (c *Connector) sendFailure(err error) {
	var sendErr *sms.SendError
	if errors.As(err, &sendErr) {
		c.metrics.DeliveryFailure(sendErr.Code)
	} else if err != nil {
		c.metrics.DeliveryFailure(0)
	}
}
