package bridge

import (
	"context"
	"fmt"
	"time"

	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	cbdb "github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/loop"
)

// startAuditHead starts the head notices when network.audit.head_room is set: the audit
// log's head posted into that room on a schedule (database/auditheadnotice.go says why and
// what), through the bridge bot.
func (c *Connector) startAuditHead(ctx context.Context) {
	cfg := c.Config.Audit
	if cfg.HeadRoom == "" {
		return
	}
	log := c.Bridge.Log.With().Str("component", "audit head").Logger()
	room := &auditHeadRoom{c: c, room: id.RoomID(cfg.HeadRoom)}
	n := cbdb.NewAuditHeadNotices(c.DB.Audit, c.now, cfg.HeadInterval, room.post)
	c.auditHead = loop.Start(log.WithContext(ctx), c.now, cfg.HeadInterval, time.Second, n.Pass)
}

// auditHeadRoom is the admin room the head notices go to.
type auditHeadRoom struct {
	c      *Connector
	room   id.RoomID
	joined bool
}

// post posts a notice into the admin room through the bot, end-to-end encrypted: the bot
// joins the room first (it must be invited), and an unencrypted room gets nothing.
func (r *auditHeadRoom) post(ctx context.Context, text string, extra map[string]any) error {
	bot := r.c.Bridge.Bot
	if !r.joined {
		if err := bot.EnsureJoined(ctx, r.room); err != nil {
			return fmt.Errorf("the bridge bot cannot join %s (invite %s to the room): %w", r.room, bot.GetMXID(), err)
		}
		r.joined = true
	}
	if mc, ok := r.c.Bridge.Matrix.(*matrix.Connector); ok {
		if encrypted, err := mc.StateStore.IsEncrypted(ctx, r.room); err != nil {
			return fmt.Errorf("failed to check that %s is encrypted: %w", r.room, err)
		} else if !encrypted {
			return fmt.Errorf("%s is not encrypted: turn on encryption in the room, nothing is posted there in clear", r.room)
		}
	}
	content := &event.MessageEventContent{MsgType: event.MsgNotice, Body: text}
	if _, err := bot.SendMessage(ctx, r.room, event.EventMessage, &event.Content{Parsed: content, Raw: extra}, nil); err != nil {
		r.joined = false // removed from the room? join again next time
		return err
	}
	return nil
}
