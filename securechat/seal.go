package securechat

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/carebridge/carebridge/database"
)

// MessageAdditional is the additional data a secure message's part ("body" or "data") is
// sealed with: it binds the sealed value to its conversation, so it opens nowhere else.
func MessageAdditional(loginID, portalID, part string) []byte {
	return []byte(loginID + "/" + portalID + "/" + part)
}

// DefaultRotateBatch is how many messages one transaction of a rotation re-seals.
const DefaultRotateBatch = 200

// RotateOptions tunes a run of RotateMessages.
type RotateOptions struct {
	// BatchSize is how many messages each transaction re-seals (DefaultRotateBatch if 0).
	BatchSize int
	// Limit stops the run after this many messages (0: no limit); a later run resumes.
	Limit int
	// Progress is called after each committed batch, with the key the batch came from.
	Progress func(fromKey string, result *RotateResult)
}

// RotateResult is what a run of RotateMessages did, by key ID.
type RotateResult struct {
	// Resealed counts, by the key they were sealed with, the messages now sealed with the current key.
	Resealed map[string]int
	// Unopened counts messages left as they were because they did not open: their key is
	// not in the ring, or the row was damaged.
	Unopened map[string]int
	// Left counts, when the run ends, the messages still not sealed with the current key.
	Left map[string]int
}

// Total is the number of messages the run re-sealed.
func (r *RotateResult) Total() (n int) {
	for _, count := range r.Resealed {
		n += count
	}
	return n
}

// errUnopened marks a message that its key does not open; the rotation leaves it.
var errUnopened = errors.New("sealed message does not open")

// RotateMessages re-seals every secure message (text and file) that is not sealed with
// the keyring's current key, one batch per transaction: stopped (by ctx or opts.Limit) it
// loses at most the batch in progress, and a later run resumes with what is left. A row
// is only rewritten while it still has the key it was read with.
func RotateMessages(ctx context.Context, db *database.Database, keys *Keyring, opts RotateOptions) (*RotateResult, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultRotateBatch
	}
	result := &RotateResult{Resealed: map[string]int{}, Unopened: map[string]int{}, Left: map[string]int{}}
	counts, err := db.Secure.KeyCounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to count secure messages by key: %w", err)
	}
	err = rotateCounted(ctx, db, keys, opts, counts, result)
	// What is left is counted even when the run was stopped, for the summary.
	if counts, countErr := db.Secure.KeyCounts(context.WithoutCancel(ctx)); countErr != nil {
		err = errors.Join(err, fmt.Errorf("failed to count secure messages by key: %w", countErr))
	} else {
		for keyID, n := range counts {
			if keyID != keys.Current() {
				result.Left[keyID] = n
			}
		}
	}
	return result, err
}

func rotateCounted(ctx context.Context, db *database.Database, keys *Keyring, opts RotateOptions,
	counts map[string]int, result *RotateResult) error {
	done := 0
	for _, keyID := range slices.Sorted(maps.Keys(counts)) {
		if keyID == keys.Current() {
			continue
		} else if !keys.Has(keyID) {
			result.Unopened[keyID] += counts[keyID]
			continue
		}
		var afterID int64
		for opts.Limit <= 0 || done < opts.Limit {
			if err := ctx.Err(); err != nil {
				return err
			}
			size := opts.BatchSize
			if opts.Limit > 0 {
				size = min(size, opts.Limit-done)
			}
			var read, resealed, unopened int
			err := db.DoTxn(ctx, nil, func(ctx context.Context) error {
				read, resealed, unopened = 0, 0, 0
				batch, err := db.Secure.SealedBatch(ctx, keyID, afterID, size)
				if err != nil {
					return err
				}
				for _, m := range batch {
					ok, err := resealMessage(ctx, db, keys, m)
					if errors.Is(err, errUnopened) {
						unopened++
					} else if err != nil {
						return fmt.Errorf("failed to re-seal secure message %d: %w", m.ID, err)
					} else if ok {
						resealed++
					}
				}
				if read = len(batch); read > 0 {
					afterID = batch[read-1].ID
				}
				return nil
			})
			if err != nil {
				return err
			}
			done += read
			if resealed > 0 {
				result.Resealed[keyID] += resealed
			}
			if unopened > 0 {
				result.Unopened[keyID] += unopened
			}
			if read > 0 && opts.Progress != nil {
				opts.Progress(keyID, result)
			}
			if read < size {
				break
			}
		}
	}
	return nil
}

// resealMessage opens a message with its key and seals it with the current one; false
// means the row changed in between (purged, or re-sealed by another run) and was left.
func resealMessage(ctx context.Context, db *database.Database, keys *Keyring, m *database.SealedMessage) (bool, error) {
	oldKey := m.KeyID
	body, err := keys.Open(oldKey, m.Body, MessageAdditional(m.LoginID, m.PortalID, "body"))
	if err != nil {
		return false, errUnopened
	}
	var data, thumb []byte
	if m.HasData {
		sealed, sealedThumb, err := db.Secure.SealedData(ctx, m.ID, oldKey)
		if err != nil {
			return false, err
		} else if sealed == nil {
			return false, nil
		}
		if data, err = keys.Open(oldKey, sealed, MessageAdditional(m.LoginID, m.PortalID, "data")); err != nil {
			return false, errUnopened
		}
		if sealedThumb != nil {
			if thumb, err = keys.Open(oldKey, sealedThumb, MessageAdditional(m.LoginID, m.PortalID, thumbPart)); err != nil {
				return false, errUnopened
			}
		}
	}
	if m.KeyID, m.Body, err = keys.Seal(body, MessageAdditional(m.LoginID, m.PortalID, "body")); err != nil {
		return false, err
	}
	m.Data, m.Thumb = nil, nil
	if m.HasData {
		if _, m.Data, err = keys.Seal(data, MessageAdditional(m.LoginID, m.PortalID, "data")); err != nil {
			return false, err
		}
	}
	if thumb != nil {
		if _, m.Thumb, err = keys.Seal(thumb, MessageAdditional(m.LoginID, m.PortalID, thumbPart)); err != nil {
			return false, err
		}
	}
	return db.Secure.Reseal(ctx, m, oldKey)
}

// ScheduledPart is the additional-data part a scheduled follow-up's text is sealed with.
const ScheduledPart = "scheduled"

// RotateScheduled re-seals pending scheduled follow-ups with the current key. It returns
// how many it re-sealed and how many no configured key opens, by key.
func RotateScheduled(ctx context.Context, db *database.Database, keys *Keyring) (resealed, unopened map[string]int, err error) {
	resealed, unopened = map[string]int{}, map[string]int{}
	pending, err := db.Scheduled().PendingNotSealedWith(ctx, keys.Current())
	if err != nil {
		return resealed, unopened, fmt.Errorf("failed to list scheduled follow-ups: %w", err)
	}
	for _, m := range pending {
		if err = ctx.Err(); err != nil {
			return resealed, unopened, err
		}
		additional := MessageAdditional(m.LoginID, m.PortalID, ScheduledPart)
		plain, err := keys.Open(m.KeyID, m.Body, additional)
		if err != nil {
			unopened[m.KeyID]++
			continue
		}
		keyID, sealed, err := keys.Seal(plain, additional)
		if err != nil {
			return resealed, unopened, err
		}
		if ok, err := db.Scheduled().Reseal(ctx, m.ID, m.KeyID, keyID, sealed); err != nil {
			return resealed, unopened, fmt.Errorf("failed to re-seal scheduled follow-up %d: %w", m.ID, err)
		} else if ok {
			resealed[m.KeyID]++
		}
	}
	return resealed, unopened, nil
}
