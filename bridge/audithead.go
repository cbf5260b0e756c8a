package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	cbdb "github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/loop"
)

// The audit log's head, posted on a schedule as an encrypted notice into the admin room
// (network.audit.head_room), is a copy of the chain's state outside the database: whoever
// rewrites the database, even with the audit key, cannot change what the room already
// holds, and `carebridge audit verify --expect ID:HASH` shows the log still holds it.

const (
	// auditHeadRetry is how soon a head that could not be verified or posted is tried again.
	auditHeadRetry = time.Minute
	// auditHeadField carries the head in the notice's content, for tools that read the room.
	auditHeadField = "com.carebridge.audit_head"
)

// auditHeadNotices posts the head when it changed since the last notice of this process.
type auditHeadNotices struct {
	c        *Connector
	room     id.RoomID
	interval time.Duration
	joined   bool
	// posted is the head last posted; each pass checks the log still holds it.
	posted *cbdb.AuditAnchor
	// warned is the break last reported, so that a broken chain is one notice, not one an interval.
	warned string
}

// startAuditHead starts the head notices when network.audit.head_room is set.
func (c *Connector) startAuditHead(ctx context.Context) {
	cfg := c.Config.Audit
	if cfg.HeadRoom == "" {
		return
	}
	log := c.Bridge.Log.With().Str("component", "audit head").Logger()
	n := &auditHeadNotices{c: c, room: id.RoomID(cfg.HeadRoom), interval: cfg.HeadInterval}
	c.auditHead = loop.Start(log.WithContext(ctx), c.now, cfg.HeadInterval, time.Second, n.pass)
}

// pass verifies the chain (and that it still holds the head posted last) and posts its
// head when it changed, or says once that the chain is broken.
func (n *auditHeadNotices) pass(ctx context.Context) (time.Time, bool) {
	log := zerolog.Ctx(ctx)
	retry := n.c.now().Add(min(auditHeadRetry, n.interval))
	var expect []cbdb.AuditAnchor
	if n.posted != nil {
		expect = append(expect, *n.posted)
	}
	head, err := n.c.DB.Audit.VerifyChain(ctx, expect...)
	var broken *cbdb.AuditBreak
	switch {
	case errors.As(err, &broken):
		log.Error().Int64("row", broken.ID).Bool("kept_head", broken.Anchor).Msg("The audit log's chain is broken; no head is posted")
		if broken.Problem == n.warned {
			return time.Time{}, false
		}
		text := fmt.Sprintf("⚠️ The audit log's chain is broken: %s. No new head is posted until it is resolved; "+
			"run `carebridge audit verify` on the bridge's host.", broken.Problem)
		if err = n.send(ctx, &event.MessageEventContent{MsgType: event.MsgNotice, Body: text}, nil); err != nil {
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
	if err = n.send(ctx, &event.MessageEventContent{MsgType: event.MsgNotice, Body: auditHeadText(head)},
		map[string]any{auditHeadField: anchor.String()}); err != nil {
		log.Err(err).Msg("Failed to post the audit log's head to network.audit.head_room")
		return retry, true
	}
	n.posted = &anchor
	log.Info().Int64("row", anchor.ID).Str("hash", anchor.Hash).Msg("Posted the audit log's head")
	return time.Time{}, false
}

// auditHeadText is the notice: the head as `carebridge audit head` prints it, on its own
// line, and how to use it. Row counts and hashes only: nothing about a patient.
func auditHeadText(head cbdb.AuditHead) string {
	anchor := head.Anchor()
	newest := "the log is empty"
	if head.Rows > 0 {
		newest = fmt.Sprintf("newest at %s", head.LastAt.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("Audit log head: %s\n%d rows verified, %s. Keep this notice: "+
		"`carebridge audit verify --expect %s` shows that the log still holds it.", anchor, head.Rows, newest, anchor)
}

// send posts a notice into the admin room through the bot, end-to-end encrypted: the bot
// joins the room first (it must be invited), and an unencrypted room gets nothing.
func (n *auditHeadNotices) send(ctx context.Context, content *event.MessageEventContent, extra map[string]any) error {
	bot := n.c.Bridge.Bot
	if !n.joined {
		if err := bot.EnsureJoined(ctx, n.room); err != nil {
			return fmt.Errorf("the bridge bot cannot join %s (invite %s to the room): %w", n.room, bot.GetMXID(), err)
		}
		n.joined = true
	}
	if mc, ok := n.c.Bridge.Matrix.(*matrix.Connector); ok {
		if encrypted, err := mc.StateStore.IsEncrypted(ctx, n.room); err != nil {
			return fmt.Errorf("failed to check that %s is encrypted: %w", n.room, err)
		} else if !encrypted {
			return fmt.Errorf("%s is not encrypted: turn on encryption in the room, nothing is posted there in clear", n.room)
		}
	}
	if _, err := bot.SendMessage(ctx, n.room, event.EventMessage, &event.Content{Parsed: content, Raw: extra}, nil); err != nil {
		n.joined = false // removed from the room? join again next time
		return err
	}
	return nil
}
