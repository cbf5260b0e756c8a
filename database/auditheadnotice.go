package database

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// The audit log's head, posted on a schedule as an encrypted notice into the admin room
// (network.audit.head_room), is a copy of the chain's state outside the database: whoever
// rewrites the database, even with the audit key, cannot change what the room already
// holds, and `carebridge audit verify --expect ID:HASH` shows the log still holds it.

const (
	// auditHeadRetry is how soon a head that could not be verified or posted is tried again.
	auditHeadRetry = time.Minute
	// AuditHeadField carries the head in the notice's content, for tools that read the room.
	AuditHeadField = "com.carebridge.audit_head"
)

// AuditHeadPost posts a notice where the head is kept outside the database: its text, and
// extra fields for the event's content (nil for none). The bridge posts it into the admin
// room, end-to-end encrypted.
type AuditHeadPost func(ctx context.Context, text string, extra map[string]any) error

// AuditHeadNotices posts the head when it changed since the last notice of this process.
type AuditHeadNotices struct {
	audit    *AuditQuery
	now      func() time.Time
	interval time.Duration
	post     AuditHeadPost
	// posted is the head last posted; each pass checks the log still holds it.
	posted *AuditAnchor
	// warned is the break last reported, so that a broken chain is one notice, not one an interval.
	warned string
}

// NewAuditHeadNotices posts the head of audit through post; interval is how often the
// caller runs Pass (network.audit.head_interval), now its clock.
func NewAuditHeadNotices(audit *AuditQuery, now func() time.Time, interval time.Duration, post AuditHeadPost) *AuditHeadNotices {
	return &AuditHeadNotices{audit: audit, now: now, interval: interval, post: post}
}

// Pass verifies the chain (and that it still holds the head posted last) and posts its
// head when it changed, or says once that the chain is broken. It returns when to try
// again after a failure (as a loop.Pass does), and false when the next regular pass will do.
func (n *AuditHeadNotices) Pass(ctx context.Context) (time.Time, bool) {
	log := zerolog.Ctx(ctx)
	retry := n.now().Add(min(auditHeadRetry, n.interval))
	var expect []AuditAnchor
	if n.posted != nil {
		expect = append(expect, *n.posted)
	}
	head, err := n.audit.VerifyChain(ctx, expect...)
	var broken *AuditBreak
	switch {
	case errors.As(err, &broken):
		log.Error().Int64("row", broken.ID).Bool("kept_head", broken.Anchor).Msg("The audit log's chain is broken; no head is posted")
		if broken.Problem == n.warned {
			return time.Time{}, false
		}
		text := fmt.Sprintf("⚠️ The audit log's chain is broken: %s. No new head is posted until it is resolved; "+
			"run `carebridge audit verify` on the bridge's host.", broken.Problem)
		if err = n.post(ctx, text, nil); err != nil {
			log.Err(err).Msg("Failed to post the broken audit chain to network.audit.head_room")
			return retry, true
		}
		n.warned = broken.Problem
		return time.Time{}, false
	case err != nil:
		if ctx.Err() == nil {
			log.Err(err).Msg("Failed to verify the audit log for its head notice")
		}
		return retry, true
	}
	n.warned = ""
	anchor := head.Anchor()
	if n.posted != nil && *n.posted == anchor {
		return time.Time{}, false
	}
	if err = n.post(ctx, AuditHeadText(head), map[string]any{AuditHeadField: anchor.String()}); err != nil {
		log.Err(err).Msg("Failed to post the audit log's head to network.audit.head_room")
		return retry, true
	}
	n.posted = &anchor
	log.Info().Int64("row", anchor.ID).Str("hash", anchor.Hash).Msg("Posted the audit log's head")
	return time.Time{}, false
}

// AuditHeadText is the notice: the head as `carebridge audit head` prints it, on its own
// line, and how to use it. Row counts and hashes only: nothing about a patient.
func AuditHeadText(head AuditHead) string {
	anchor := head.Anchor()
	newest := "the log is empty"
	if head.Rows > 0 {
		newest = fmt.Sprintf("newest at %s", head.LastAt.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("Audit log head: %s\n%d rows verified, %s. Keep this notice: "+
		"`carebridge audit verify --expect %s` shows that the log still holds it.", anchor, head.Rows, newest, anchor)
}
