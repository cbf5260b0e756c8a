package bridge

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
)

// The first purge waits a little so that it does not compete with start-up; later ones run
// at this interval. Variables so that tests can shorten them.
var (
	retentionFirstDelay = time.Minute
	retentionInterval   = time.Hour
)

// retentionLoop purges what the retention policy no longer keeps: the secure chat's
// copies after secure_chat.retention_days (the rooms stay the record of care), delivered
// inbound receipts after 7 days, expired links, codes, sessions and media URLs after a day.
type retentionLoop struct {
	db     *database.Database
	policy database.RetentionPolicy
	cancel context.CancelFunc
	done   chan struct{}
}

// startRetention starts the purge loop; stopRetention ends it.
func (c *Connector) startRetention(ctx context.Context) {
	log := c.Bridge.Log.With().Str("component", "retention").Logger()
	ctx, cancel := context.WithCancel(log.WithContext(ctx))
	c.retention = &retentionLoop{db: c.DB, policy: database.NewRetentionPolicy(c.Config.SecureChat.RetentionDays),
		cancel: cancel, done: make(chan struct{})}
	go c.retention.run(ctx)
}

// stopRetention cancels a purge in progress (between batches, each of which commits with
// its audit row) and waits for the loop to end.
func (c *Connector) stopRetention() {
	if c.retention != nil {
		c.retention.cancel()
		<-c.retention.done
	}
}

func (r *retentionLoop) run(ctx context.Context) {
	defer close(r.done)
	timer := time.NewTimer(retentionFirstDelay)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		r.purge(ctx)
		timer.Reset(retentionInterval)
	}
}

// purge runs one purge and logs its counts (never what the rows held).
func (r *retentionLoop) purge(ctx context.Context) {
	log := zerolog.Ctx(ctx)
	counts, err := r.db.Purge(ctx, time.Now(), r.policy)
	if err != nil && ctx.Err() == nil {
		log.Err(err).Msg("Failed to purge data past retention; will retry")
	}
	level := zerolog.DebugLevel
	if counts.Total() > 0 {
		level = zerolog.InfoLevel
	}
	log.WithLevel(level).
		Int64("secure_messages", counts.SecureMessages).
		Int("conversations", counts.Conversations).
		Int64("inbound_receipts", counts.Receipts).
		Int64("secure_links", counts.Links).
		Int64("secure_codes", counts.Codes).
		Int64("secure_sessions", counts.Sessions).
		Int64("outbound_media", counts.Media).
		Int64("api_idempotency", counts.APIKeys).
		Int64("api_events", counts.APIEvents).
		Int64("api_resources", counts.APIResources).
		Msg("Purged data past retention")
}
