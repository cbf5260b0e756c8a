package database

import (
	"context"
	"fmt"
)

// Key rotation of what the integration API seals: FHIR Communication texts
// (api_message.resource), event payloads (api_event.payload) and answers kept for
// Idempotency-Key (api_idempotency.response). Each is walked in key order with a cursor and
// rewritten only while it still has the key it was read with.

// APISealedKind names one of the API's sealed columns.
type APISealedKind string

// The integration API's sealed columns.
const (
	APISealedCommunication APISealedKind = "communication"
	APISealedEvent         APISealedKind = "event"
	APISealedAnswer        APISealedKind = "answer"
)

// APISealedKinds are every kind, in the order rotation walks them.
var APISealedKinds = []APISealedKind{APISealedCommunication, APISealedEvent, APISealedAnswer}

type apiSealedTable struct {
	count, batch, reseal string
}

var apiSealedTables = map[APISealedKind]apiSealedTable{
	APISealedCommunication: {
		count:  `SELECT key_id, COUNT(*) FROM api_message WHERE resource IS NOT NULL GROUP BY key_id`,
		batch:  `SELECT id, '', key_id, resource FROM api_message WHERE resource IS NOT NULL AND key_id<>$1 AND id>$2 ORDER BY id LIMIT $3`,
		reseal: `UPDATE api_message SET key_id=$4, resource=$5 WHERE id=$1 AND $2='' AND key_id=$3`,
	},
	APISealedEvent: {
		count:  `SELECT key_id, COUNT(*) FROM api_event GROUP BY key_id`,
		batch:  `SELECT event_id, '', key_id, payload FROM api_event WHERE key_id<>$1 AND event_id>$2 ORDER BY event_id LIMIT $3`,
		reseal: `UPDATE api_event SET key_id=$4, payload=$5 WHERE event_id=$1 AND $2='' AND key_id=$3`,
	},
	APISealedAnswer: {
		count: `SELECT key_id, COUNT(*) FROM api_idempotency WHERE response IS NOT NULL GROUP BY key_id`,
		// The cursor is integration and key joined by a slash, which no integration name holds.
		batch: `SELECT integration, idem_key, key_id, response FROM api_idempotency
			WHERE response IS NOT NULL AND key_id<>$1 AND integration || '/' || idem_key > $2
			ORDER BY integration || '/' || idem_key LIMIT $3`,
		reseal: `UPDATE api_idempotency SET key_id=$4, response=$5 WHERE integration=$1 AND idem_key=$2 AND key_id=$3`,
	},
}

// APISealed is one sealed value of the integration API, as rotation reads it.
type APISealed struct {
	Kind  APISealedKind
	ID    string // api_message.id, api_event.event_id, api_idempotency.integration
	ID2   string // api_idempotency.idem_key
	KeyID string
	Data  []byte
}

// Cursor is where the next batch of its kind starts.
func (s *APISealed) Cursor() string {
	if s.Kind == APISealedAnswer {
		return s.ID + "/" + s.ID2
	}
	return s.ID
}

// SealedKeyCounts counts the API's sealed values by key ID.
func (q *IntegrationQuery) SealedKeyCounts(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{}
	for _, kind := range APISealedKinds {
		if err := addKeyCounts(ctx, q.db, counts, apiSealedTables[kind].count); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// SealedBatch returns up to limit values of a kind not sealed with keyID, after cursor.
func (q *IntegrationQuery) SealedBatch(ctx context.Context, kind APISealedKind, keyID, cursor string, limit int) ([]*APISealed, error) {
	table, ok := apiSealedTables[kind]
	if !ok {
		return nil, fmt.Errorf("unknown sealed kind %q", kind)
	}
	rows, err := q.db.Query(ctx, table.batch, keyID, cursor, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var batch []*APISealed
	for rows.Next() {
		s := &APISealed{Kind: kind}
		if err = rows.Scan(&s.ID, &s.ID2, &s.KeyID, &s.Data); err != nil {
			return nil, err
		}
		batch = append(batch, s)
	}
	return batch, rows.Err()
}

// Reseal replaces a value sealed with oldKeyID; false when it changed meanwhile.
func (q *IntegrationQuery) Reseal(ctx context.Context, s *APISealed, oldKeyID string) (bool, error) {
	res, err := q.db.Exec(ctx, apiSealedTables[s.Kind].reseal, s.ID, s.ID2, oldKeyID, s.KeyID, s.Data)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
