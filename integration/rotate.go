package integration

import (
	"context"
	"fmt"

	"github.com/carebridge/carebridge/database"
)

// Keyring is what rotation needs of the bridge's keyring.
type Keyring interface {
	Sealer
	Current() string
}

// rotateBatch is how many sealed values rotation reads at a time.
const rotateBatch = 200

// SealedAdditional is the additional data a sealed value of the API is bound to.
func SealedAdditional(s *database.APISealed) []byte {
	switch s.Kind {
	case database.APISealedCommunication:
		return resourceAdditional(s.ID)
	case database.APISealedEvent:
		return eventAdditional(s.ID)
	default:
		return idempotencyAdditional(s.ID, s.ID2)
	}
}

// Rotate re-seals what the API keeps (FHIR texts, event payloads, kept answers) with the
// current key. It returns, by old key, how many it re-sealed and how many no configured
// key opens (those are left as they are). Stopped, it resumes on the next run.
func Rotate(ctx context.Context, db *database.Database, keys Keyring) (resealed, unopened map[string]int, err error) {
	resealed, unopened = map[string]int{}, map[string]int{}
	q := db.Integration()
	for _, kind := range database.APISealedKinds {
		cursor := ""
		for {
			batch, err := q.SealedBatch(ctx, kind, keys.Current(), cursor, rotateBatch)
			if err != nil {
				return resealed, unopened, fmt.Errorf("failed to read the integration API's sealed %ss: %w", kind, err)
			}
			for _, s := range batch {
				cursor = s.Cursor()
				if err = ctx.Err(); err != nil {
					return resealed, unopened, err
				}
				plain, err := keys.Open(s.KeyID, s.Data, SealedAdditional(s))
				if err != nil {
					unopened[s.KeyID]++
					continue
				}
				oldKey := s.KeyID
				if s.KeyID, s.Data, err = keys.Seal(plain, SealedAdditional(s)); err != nil {
					return resealed, unopened, err
				}
				if ok, err := q.Reseal(ctx, s, oldKey); err != nil {
					return resealed, unopened, fmt.Errorf("failed to re-seal an integration API %s: %w", kind, err)
				} else if ok {
					resealed[oldKey]++
				}
			}
			if len(batch) < rotateBatch {
				break
			}
		}
	}
	return resealed, unopened, nil
}
