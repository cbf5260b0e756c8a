package outbox

import (
	"context"
	"fmt"

	"github.com/carebridge/carebridge/database"
)

// CurrentSealer is a key ring that names the key it seals with.
type CurrentSealer interface {
	Sealer
	Current() string
}

// Rotate re-seals the texts still waiting in the outbox (their bodies are sealed until
// sent) with the key ring's current key, so that an old key can be retired while texts
// wait for their turn or a retry. It returns how many it re-sealed and how many no
// configured key opens, by key.
func Rotate(ctx context.Context, db *database.Database, keys CurrentSealer) (resealed, unopened map[string]int, err error) {
	resealed, unopened = map[string]int{}, map[string]int{}
	waiting, err := db.Outbox.SealedNotWith(ctx, keys.Current())
	if err != nil {
		return resealed, unopened, fmt.Errorf("failed to list the outbox: %w", err)
	}
	for _, row := range waiting {
		if err = ctx.Err(); err != nil {
			return resealed, unopened, err
		}
		add := additional(&Text{LoginID: row.LoginID, PortalID: row.PortalID})
		plain, err := keys.Open(row.KeyID, row.Sealed, add)
		if err != nil {
			unopened[row.KeyID]++
			continue
		}
		keyID, sealed, err := keys.Seal(plain, add)
		if err != nil {
			return resealed, unopened, err
		}
		if ok, err := db.Outbox.Reseal(ctx, row.ID, row.KeyID, keyID, sealed); err != nil {
			return resealed, unopened, fmt.Errorf("failed to re-seal text %d in the outbox: %w", row.ID, err)
		} else if ok {
			resealed[row.KeyID]++
		}
	}
	return resealed, unopened, nil
}
