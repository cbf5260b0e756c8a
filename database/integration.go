package database

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"go.mau.fi/util/dbutil"
)

// The integration API's tables: api_conversation, api_message, api_idempotency, api_event.

const (
	apiConversationColumns   = `id, login_id, portal_id, external_id, created_at`
	insertAPIConversationSQL = `
		INSERT INTO api_conversation (id, login_id, portal_id, external_id, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (login_id, portal_id) DO NOTHING
	`
	getAPIConversationSQL      = `SELECT ` + apiConversationColumns + ` FROM api_conversation WHERE id=$1`
	getAPIConversationByKeySQL = `SELECT ` + apiConversationColumns + ` FROM api_conversation WHERE login_id=$1 AND portal_id=$2`
	getAPIConversationByExtSQL = `SELECT ` + apiConversationColumns + ` FROM api_conversation WHERE external_id=$1 AND external_id<>'' ORDER BY created_at DESC LIMIT 20`
	setAPIConversationExtSQL   = `UPDATE api_conversation SET external_id=$2 WHERE id=$1`
	apiMessageColumns          = `id, integration, conversation_id, login_id, portal_id, via, secure_id, message_sid, created_at, read_at, key_id, resource`
	insertAPIMessageSQL        = `INSERT INTO api_message (` + apiMessageColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`
	getAPIMessageSQL           = `SELECT ` + apiMessageColumns + ` FROM api_message WHERE id=$1`
	markAPIMessagesReadSQL     = `UPDATE api_message SET read_at=$4 WHERE login_id=$1 AND portal_id=$2 AND via='secure' AND read_at=0 AND secure_id<=$3`
	listReadAPIMessagesSQL     = `SELECT ` + apiMessageColumns + ` FROM api_message WHERE login_id=$1 AND portal_id=$2 AND read_at=$3 ORDER BY created_at, id`
	claimIdempotencySQL        = `INSERT INTO api_idempotency (integration, idem_key, request_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (integration, idem_key) DO NOTHING`
	getIdempotencySQL          = `SELECT request_hash, status, key_id, response, created_at FROM api_idempotency WHERE integration=$1 AND idem_key=$2`
	retakeIdempotencySQL       = `UPDATE api_idempotency SET request_hash=$3, created_at=$4 WHERE integration=$1 AND idem_key=$2 AND status=0 AND created_at=$5`
	finishIdempotencySQL       = `UPDATE api_idempotency SET status=$3, key_id=$4, response=$5 WHERE integration=$1 AND idem_key=$2`
	releaseIdempotencySQL      = `DELETE FROM api_idempotency WHERE integration=$1 AND idem_key=$2 AND status=0`
	apiEventColumns            = `id, event_id, integration, type, key_id, payload, created_at, attempts, next_attempt_at, delivered_at, last_error`
	insertAPIEventSQL          = `INSERT INTO api_event (event_id, integration, type, key_id, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)`
	nextAPIEventSQL            = `SELECT ` + apiEventColumns + ` FROM api_event WHERE integration=$1 AND delivered_at=0 ORDER BY id LIMIT 1`
	deliveredAPIEventSQL       = `UPDATE api_event SET delivered_at=$2, attempts=attempts+1, last_error='' WHERE id=$1`
	failedAPIEventSQL          = `UPDATE api_event SET attempts=attempts+1, next_attempt_at=$2, last_error=$3 WHERE id=$1`
	pendingAPIEventsSQL        = `SELECT COUNT(*) FROM api_event WHERE integration=$1 AND delivered_at=0`
)

// APIConversation is the integration API's handle on a conversation.
type APIConversation struct {
	ID         string
	LoginID    string
	PortalID   string
	ExternalID string
	CreatedAt  time.Time
}

// Scan reads one row.
func (a *APIConversation) Scan(row dbutil.Scannable) (*APIConversation, error) {
	var createdAt int64
	if err := row.Scan(&a.ID, &a.LoginID, &a.PortalID, &a.ExternalID, &createdAt); err != nil {
		return nil, err
	}
	a.CreatedAt = time.UnixMilli(createdAt)
	return a, nil
}

// APIMessage is a message an integration sent. Resource is a FHIR Communication as it
// was submitted, sealed with KeyID (nil for REST messages and after retention).
type APIMessage struct {
	ID             string
	Integration    string
	ConversationID string
	LoginID        string
	PortalID       string
	Via            Mode
	SecureID       int64
	MessageSID     string
	CreatedAt      time.Time
	ReadAt         time.Time
	KeyID          string
	Resource       []byte
}

// Scan reads one row.
func (m *APIMessage) Scan(row dbutil.Scannable) (*APIMessage, error) {
	var createdAt, readAt int64
	err := row.Scan(&m.ID, &m.Integration, &m.ConversationID, &m.LoginID, &m.PortalID, &m.Via, &m.SecureID,
		&m.MessageSID, &createdAt, &readAt, &m.KeyID, &m.Resource)
	if err != nil {
		return nil, err
	}
	m.CreatedAt = time.UnixMilli(createdAt)
	m.ReadAt = unixMilliOrZero(readAt)
	return m, nil
}

// APIEvent is an event waiting for (or past) delivery to an integration. Payload is the
// JSON sealed with KeyID.
type APIEvent struct {
	ID            int64
	EventID       string
	Integration   string
	Type          string
	KeyID         string
	Payload       []byte
	CreatedAt     time.Time
	Attempts      int
	NextAttemptAt time.Time
	DeliveredAt   time.Time
	LastError     string
}

// Scan reads one row.
func (e *APIEvent) Scan(row dbutil.Scannable) (*APIEvent, error) {
	var createdAt, next, delivered int64
	err := row.Scan(&e.ID, &e.EventID, &e.Integration, &e.Type, &e.KeyID, &e.Payload, &createdAt, &e.Attempts,
		&next, &delivered, &e.LastError)
	if err != nil {
		return nil, err
	}
	e.CreatedAt = time.UnixMilli(createdAt)
	e.NextAttemptAt = unixMilliOrZero(next)
	e.DeliveredAt = unixMilliOrZero(delivered)
	return e, nil
}

// Idempotency is a POST's Idempotency-Key record. Status 0: the first request with the
// key is still being handled.
type Idempotency struct {
	RequestHash string
	Status      int
	KeyID       string
	Response    []byte
	CreatedAt   time.Time
}

// IntegrationQuery runs the integration API's statements.
type IntegrationQuery struct {
	db *dbutil.Database
}

// Integration runs the integration API tables' statements.
func (db *Database) Integration() *IntegrationQuery { return &IntegrationQuery{db.Database} }

func (q *IntegrationQuery) conversation(ctx context.Context, query string, args ...any) (*APIConversation, error) {
	a, err := (&APIConversation{}).Scan(q.db.QueryRow(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return a, err
}

// EnsureConversation returns the conversation's API handle, giving it newID when it has none.
func (q *IntegrationQuery) EnsureConversation(ctx context.Context, loginID, portalID, newID string) (*APIConversation, error) {
	if _, err := q.db.Exec(ctx, insertAPIConversationSQL, newID, loginID, portalID, "", time.Now().UnixMilli()); err != nil {
		return nil, err
	}
	return q.conversation(ctx, getAPIConversationByKeySQL, loginID, portalID)
}

// Conversation returns the conversation with this API ID, or nil.
func (q *IntegrationQuery) Conversation(ctx context.Context, id string) (*APIConversation, error) {
	return q.conversation(ctx, getAPIConversationSQL, id)
}

// ConversationsByExternalID returns the conversations carrying an integration's patient
// ID, newest first (a patient can text several clinic numbers).
func (q *IntegrationQuery) ConversationsByExternalID(ctx context.Context, externalID string) ([]*APIConversation, error) {
	rows, err := q.db.Query(ctx, getAPIConversationByExtSQL, externalID)
	return dbutil.NewRowIterWithError(rows, func(row dbutil.Scannable) (*APIConversation, error) {
		return (&APIConversation{}).Scan(row)
	}, err).AsList()
}

// SetExternalID records the integration's patient ID for a conversation.
func (q *IntegrationQuery) SetExternalID(ctx context.Context, id, externalID string) error {
	_, err := q.db.Exec(ctx, setAPIConversationExtSQL, id, externalID)
	return err
}

// InsertMessage records a message an integration sent.
func (q *IntegrationQuery) InsertMessage(ctx context.Context, m *APIMessage) error {
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	_, err := q.db.Exec(ctx, insertAPIMessageSQL, m.ID, m.Integration, m.ConversationID, m.LoginID, m.PortalID, m.Via,
		m.SecureID, m.MessageSID, m.CreatedAt.UnixMilli(), 0, m.KeyID, m.Resource)
	return err
}

// Message returns the API message with this ID, or nil.
func (q *IntegrationQuery) Message(ctx context.Context, id string) (*APIMessage, error) {
	m, err := (&APIMessage{}).Scan(q.db.QueryRow(ctx, getAPIMessageSQL, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return m, err
}

// MarkRead records that the patient read the conversation's secure messages up to
// secureID, and returns the API messages that became read.
func (q *IntegrationQuery) MarkRead(ctx context.Context, loginID, portalID string, secureID int64, at time.Time) ([]*APIMessage, error) {
	res, err := q.db.Exec(ctx, markAPIMessagesReadSQL, loginID, portalID, secureID, at.UnixMilli())
	if err != nil {
		return nil, err
	} else if n, _ := res.RowsAffected(); n == 0 {
		return nil, nil
	}
	rows, err := q.db.Query(ctx, listReadAPIMessagesSQL, loginID, portalID, at.UnixMilli())
	return dbutil.NewRowIterWithError(rows, func(row dbutil.Scannable) (*APIMessage, error) {
		return (&APIMessage{}).Scan(row)
	}, err).AsList()
}

// ClaimIdempotency records a new key (claimed: true) or returns the earlier record.
func (q *IntegrationQuery) ClaimIdempotency(ctx context.Context, integration, key, requestHash string) (claimed bool, prior *Idempotency, err error) {
	res, err := q.db.Exec(ctx, claimIdempotencySQL, integration, key, requestHash, time.Now().UnixMilli())
	if err != nil {
		return false, nil, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil, nil
	}
	prior = &Idempotency{}
	var createdAt int64
	err = q.db.QueryRow(ctx, getIdempotencySQL, integration, key).Scan(&prior.RequestHash, &prior.Status, &prior.KeyID, &prior.Response, &createdAt)
	if errors.Is(err, sql.ErrNoRows) {
		// Released between the two statements: the caller may try again.
		return false, nil, nil
	} else if err != nil {
		return false, nil, err
	}
	prior.CreatedAt = time.UnixMilli(createdAt)
	return false, prior, nil
}

// RetakeIdempotency takes over an unfinished claim (its request was interrupted) that
// is still the one read as prior.
func (q *IntegrationQuery) RetakeIdempotency(ctx context.Context, integration, key, requestHash string, prior *Idempotency) (bool, error) {
	res, err := q.db.Exec(ctx, retakeIdempotencySQL, integration, key, requestHash, time.Now().UnixMilli(), prior.CreatedAt.UnixMilli())
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FinishIdempotency stores the answer given to the key's request (sealed with keyID).
func (q *IntegrationQuery) FinishIdempotency(ctx context.Context, integration, key string, status int, keyID string, response []byte) error {
	_, err := q.db.Exec(ctx, finishIdempotencySQL, integration, key, status, keyID, response)
	return err
}

// ReleaseIdempotency forgets an unfinished key whose request changed nothing, so that it
// can be used again.
func (q *IntegrationQuery) ReleaseIdempotency(ctx context.Context, integration, key string) error {
	_, err := q.db.Exec(ctx, releaseIdempotencySQL, integration, key)
	return err
}

// InsertEvent queues an event for an integration.
func (q *IntegrationQuery) InsertEvent(ctx context.Context, e *APIEvent) error {
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now()
	}
	_, err := q.db.Exec(ctx, insertAPIEventSQL, e.EventID, e.Integration, e.Type, e.KeyID, e.Payload, e.CreatedAt.UnixMilli())
	return err
}

// NextEvent returns the integration's oldest undelivered event, or nil.
func (q *IntegrationQuery) NextEvent(ctx context.Context, integration string) (*APIEvent, error) {
	e, err := (&APIEvent{}).Scan(q.db.QueryRow(ctx, nextAPIEventSQL, integration))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return e, err
}

// EventDelivered marks an event delivered.
func (q *IntegrationQuery) EventDelivered(ctx context.Context, id int64, at time.Time) error {
	_, err := q.db.Exec(ctx, deliveredAPIEventSQL, id, at.UnixMilli())
	return err
}

// EventFailed records a failed delivery and when to try again.
func (q *IntegrationQuery) EventFailed(ctx context.Context, id int64, next time.Time, reason string) error {
	_, err := q.db.Exec(ctx, failedAPIEventSQL, id, next.UnixMilli(), reason)
	return err
}

// PendingEvents counts the integration's undelivered events.
func (q *IntegrationQuery) PendingEvents(ctx context.Context, integration string) (n int, err error) {
	err = q.db.QueryRow(ctx, pendingAPIEventsSQL, integration).Scan(&n)
	return
}
