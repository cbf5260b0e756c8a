package securechat

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/loop"
)

// The first purge waits a little so that it does not compete with start-up; later ones run
// at this interval.
const (
	retentionFirstDelay = time.Minute
	retentionInterval   = time.Hour
)

// StartRetention starts the loop that purges what the retention policy no longer keeps:
// the secure chat's copies after secure_chat.retention_days (the rooms stay the record of
// care), delivered inbound receipts after 7 days, expired links, codes, sessions and media
// URLs after a day. Stop cancels a purge in progress between batches (each commits with
// its audit row) and waits for it.
func StartRetention(ctx context.Context, db *database.Database, retentionDays int) *loop.Loop {
	policy := database.NewRetentionPolicy(retentionDays)
	next := time.Now().Add(retentionFirstDelay)
	return loop.Start(ctx, time.Now, retentionInterval, time.Second, func(ctx context.Context) (time.Time, bool) {
		if time.Now().Before(next) {
			return next, true
		}
		purge(ctx, db, policy)
		next = time.Now().Add(retentionInterval)
		return next, true
	})
}

// purge runs one purge and logs its counts (never what the rows held).
func purge(ctx context.Context, db *database.Database, policy database.RetentionPolicy) {
	log := zerolog.Ctx(ctx)
	counts, err := db.Purge(ctx, time.Now(), policy)
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
