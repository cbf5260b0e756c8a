package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"
)

// staleClaim is how long a request holding an Idempotency-Key may run before a retry
// with the key takes over (its bridge was stopped mid-request).
const staleClaim = 2 * time.Minute

// idempotent runs a POST once per Idempotency-Key: a repeat with the same key and the
// same request gets the first answer again (Idempotent-Replayed: true); the same key
// with another request is refused; a repeat while the first still runs gets 409. An
// answer of 5xx or 409 is not kept, so a retry runs again. Without the header the POST just runs.
func (s *Server) idempotent(w *recorder, r *http.Request, c *call, body []byte,
	run func(ctx context.Context) (int, any, error), fail func(*Error)) {
	keys := r.Header.Values("Idempotency-Key")
	if len(keys) == 0 {
		// Seen through even if the caller hangs up, as with a key.
		status, resp, err := run(context.WithoutCancel(r.Context()))
		if err != nil {
			fail(asError(err))
			return
		}
		writeJSON(w, status, resp, c.fhir)
		return
	}
	// A header sent empty or twice is a mistake, not "no key": the caller meant a key.
	key := keys[0]
	if len(keys) > 1 || !validIdempotencyKey(key) {
		fail(apiError(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)"))
		return
	}
	sum := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "\n" + string(body)))
	hash := hex.EncodeToString(sum[:])
	q := s.db.Integration()
	name := c.integ.Name
	additional := idempotencyAdditional(name, key)
	claimed := false
	for range 3 {
		ok, prior, err := q.ClaimIdempotency(r.Context(), name, key, hash)
		if err != nil {
			s.log.Err(err).Msg("Failed to record an Idempotency-Key")
			fail(asError(err))
			return
		} else if ok {
			claimed = true
			break
		} else if prior == nil {
			continue
		}
		if prior.RequestHash != hash {
			fail(apiError(http.StatusUnprocessableEntity, "idempotency_key_reused",
				"this Idempotency-Key was used for a different request (keys are kept for a day); use a new key for a new request"))
			return
		}
		if prior.Status == 0 {
			if time.Since(prior.CreatedAt) > staleClaim {
				if ok, err = q.RetakeIdempotency(r.Context(), name, key, hash, prior); err == nil && ok {
					claimed = true
					break
				}
			}
			w.Header().Set("Retry-After", "1")
			fail(apiError(http.StatusConflict, "request_in_progress", "a request with this Idempotency-Key is still being handled; retry shortly"))
			return
		}
		data, err := s.opts.Keys.Open(prior.KeyID, prior.Response, additional)
		if err != nil {
			s.log.Err(err).Msg("Failed to open a kept answer for an Idempotency-Key")
			fail(apiError(http.StatusConflict, "idempotency_answer_unavailable",
				"the first answer to this Idempotency-Key cannot be read any more (its key was rotated away); use a new key"))
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, prior.Status, data, c.fhir)
		return
	}
	if !claimed {
		fail(apiError(http.StatusConflict, "request_in_progress", "a request with this Idempotency-Key is still being handled; retry shortly"))
		return
	}
	// The request is seen through even if the caller hangs up: its retry gets the answer.
	ctx := context.WithoutCancel(r.Context())
	status, resp, err := run(ctx)
	var data []byte
	if err != nil {
		e := asError(err)
		// Failures, and refusals that depend on the moment (opted out, number not linked),
		// are not kept: a retry with the key runs again.
		if e.Status >= 500 || e.Status == http.StatusConflict {
			if relErr := q.ReleaseIdempotency(ctx, name, key); relErr != nil {
				s.log.Err(relErr).Msg("Failed to release an Idempotency-Key")
			}
			fail(e)
			return
		}
		status, data = e.Status, encodeError(e, c.fhir)
	} else if data, err = json.Marshal(resp); err != nil {
		_ = q.ReleaseIdempotency(ctx, name, key)
		fail(asError(err))
		return
	}
	keyID, sealed, err := s.opts.Keys.Seal(data, additional)
	if err == nil {
		err = q.FinishIdempotency(ctx, name, key, status, keyID, sealed)
	}
	if err != nil {
		// The action happened: answer it; a retry with the key then waits out staleClaim.
		s.log.Err(err).Msg("Failed to keep the answer for an Idempotency-Key")
	}
	writeRaw(w, status, data, c.fhir)
}

func validIdempotencyKey(key string) bool {
	if len(key) == 0 || len(key) > 255 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

func idempotencyAdditional(integration, key string) []byte {
	return []byte("idempotency:" + integration + ":" + key)
}
