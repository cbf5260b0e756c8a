package outbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/outbox"
)

// ring is a key ring of named keys (a key "seals" by prefixing its name and the
// additional data); current seals, any listed key opens.
type ring struct {
	current string
	keys    []string
}

func (r ring) Current() string { return r.current }

func (r ring) Seal(plaintext, additional []byte) (string, []byte, error) {
	return r.current, append([]byte(r.current+"|"+string(additional)+"|"), plaintext...), nil
}

func (r ring) Open(keyID string, sealed, additional []byte) ([]byte, error) {
	prefix := keyID + "|" + string(additional) + "|"
	for _, k := range r.keys {
		if k == keyID && strings.HasPrefix(string(sealed), prefix) {
			return sealed[len(prefix):], nil
		}
	}
	return nil, errors.New("no key opens it")
}

// TestRotateResealsWaitingTexts: texts waiting for their turn are re-sealed with the new
// current key, so the old one can be retired; after the old key is gone they still go.
func TestRotateResealsWaitingTexts(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		old := ring{current: "k1", keys: []string{"k1"}}
		o := outbox.New(outbox.Options{DB: e.db, Config: e.cfg, Accounts: accounts{e.provider}, Sealer: old,
			Hooks: e.hooks, StatusCallback: func(string) string { return "https://bridge.example/status" }, Log: zerolog.Nop()})
		for n := range 3 {
			require.NoError(t, o.Enqueue(ctx, e.text(1, n))) // not started: they wait
		}
		both := ring{current: "k2", keys: []string{"k1", "k2"}}
		resealed, unopened, err := outbox.Rotate(ctx, e.db, both)
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"k1": 3}, resealed)
		assert.Empty(t, unopened)
		waiting, err := e.db.Outbox.SealedNotWith(ctx, "k2")
		require.NoError(t, err)
		assert.Empty(t, waiting, "every waiting text is sealed with k2")

		resealed, _, err = outbox.Rotate(ctx, e.db, both)
		require.NoError(t, err)
		assert.Empty(t, resealed, "a second run has nothing to do")

		// k1 retired: the texts still open and go, in order.
		o = outbox.New(outbox.Options{DB: e.db, Config: e.cfg, Accounts: accounts{e.provider}, Sealer: ring{current: "k2", keys: []string{"k2"}},
			Hooks: e.hooks, StatusCallback: func(string) string { return "https://bridge.example/status" }, Log: zerolog.Nop()})
		require.NoError(t, o.Start(ctx))
		t.Cleanup(o.Stop)
		require.Eventually(t, func() bool { return e.provider.count() == 3 }, 10*time.Second, 10*time.Millisecond)
		assert.Equal(t, []string{"reply 0 to patient 1", "reply 1 to patient 1", "reply 2 to patient 1"}, e.provider.bodies(patient(1)))
		assert.Empty(t, e.hooks.failures())
	})
}
