package appservice

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/id"
)

// receiptLog records the receipts a DeliveryReceipts marks.
type receiptLog struct {
	mu    sync.Mutex
	marks []string
}

func (l *receiptLog) delivered(room, event string, sent time.Time) *Delivered {
	return &Delivered{Room: id.RoomID(room), Event: id.EventID(event), Sent: sent,
		Mark: func(_ context.Context, room id.RoomID, event id.EventID) error {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.marks = append(l.marks, string(room)+" "+string(event))
			return nil
		}}
}

func (l *receiptLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.marks...)
}

func TestDeliveryReceiptsMarkEachRoomsNewestTextOnce(t *testing.T) {
	const delay = 50 * time.Millisecond
	dr := NewDeliveryReceipts(context.Background(), delay)
	var l receiptLog
	t0 := time.Now()
	// A reply in three parts delivered out of order, and one text in another room.
	dr.Add(l.delivered("!a", "$a2", t0.Add(2*time.Millisecond)))
	dr.Add(l.delivered("!a", "$a3", t0.Add(3*time.Millisecond)))
	dr.Add(l.delivered("!a", "$a1", t0.Add(time.Millisecond)))
	dr.Add(l.delivered("!b", "$b1", t0.Add(time.Millisecond)))
	assert.Empty(t, l.got(), "nothing is marked before the delay")
	require.Eventually(t, func() bool { return len(l.got()) == 2 }, 5*time.Second, 5*time.Millisecond)
	assert.ElementsMatch(t, []string{"!a $a3", "!b $b1"}, l.got())

	// A late delivery of an older text does not move the receipt back; a newer one is marked.
	dr.Add(l.delivered("!a", "$a2", t0.Add(2*time.Millisecond)))
	dr.Add(l.delivered("!a", "$a4", t0.Add(4*time.Millisecond)))
	require.Eventually(t, func() bool { return len(l.got()) == 3 }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(3 * delay)
	assert.Equal(t, []string{"!a $a4"}, l.got()[2:])
}

func TestDeliveryReceiptsStopMarksWhatWaits(t *testing.T) {
	dr := NewDeliveryReceipts(context.Background(), time.Hour)
	var l receiptLog
	t0 := time.Now()
	dr.Add(l.delivered("!a", "$a1", t0))
	dr.Add(l.delivered("!a", "$a2", t0.Add(time.Millisecond)))
	dr.Add(l.delivered("!b", "$b1", t0))
	dr.Stop()
	assert.ElementsMatch(t, []string{"!a $a2", "!b $b1"}, l.got(), "stop marks each room's newest at once")
	// After stop, a delivery is marked as it comes.
	dr.Add(l.delivered("!c", "$c1", t0))
	assert.Contains(t, l.got(), "!c $c1")
}
