package database

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"go.mau.fi/util/dbutil"
)

// SecureMessageKind is what a secure message carries.
type SecureMessageKind string

// The kinds of secure message.
const (
	SecureText  SecureMessageKind = "text"
	SecureImage SecureMessageKind = "image"
	SecureFile  SecureMessageKind = "file"
)

const (
	secureMessageColumns = `id, login_id, portal_id, from_patient, sender_name, kind, content_type, size, key_id, body, data, event_id, created_at, read_at, thumb IS NOT NULL, width, height`
	// secureMessageListColumns leaves out the file data: listing a conversation never loads files.
	secureMessageListColumns = `id, login_id, portal_id, from_patient, sender_name, kind, content_type, size, key_id, body, NULL, event_id, created_at, read_at, thumb IS NOT NULL, width, height`
	insertSecureMessageQuery = `
		INSERT INTO secure_message (login_id, portal_id, from_patient, sender_name, kind, content_type, size, key_id, body, data, event_id, created_at, thumb, width, height)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		RETURNING id
	`
	listSecureMessagesQuery = `
		SELECT ` + secureMessageListColumns + ` FROM secure_message
		WHERE login_id=$1 AND portal_id=$2 AND id>$3 ORDER BY id LIMIT $4
	`
	getSecureMessageQuery = `SELECT ` + secureMessageColumns + ` FROM secure_message WHERE id=$1 AND login_id=$2 AND portal_id=$3`
	// The staff message kept from a Matrix event (each is kept once).
	getStaffByEventQuery = `SELECT ` + secureMessageListColumns + ` FROM secure_message
		WHERE login_id=$1 AND portal_id=$2 AND event_id=$3 AND from_patient=false`
	getSecureThumbQuery = `SELECT key_id, thumb FROM secure_message WHERE id=$1 AND login_id=$2 AND portal_id=$3 AND thumb IS NOT NULL`
	// markReadQuery marks the staff messages a patient has now seen, returning nothing.
	markSecureReadQuery = `
		UPDATE secure_message SET read_at=$4
		WHERE login_id=$1 AND portal_id=$2 AND from_patient=false AND read_at=0 AND id<=$3
	`
	unreadStaffCountQuery = `SELECT COUNT(*) FROM secure_message WHERE login_id=$1 AND portal_id=$2 AND from_patient=false AND read_at=0`
	// markSeenByClinicQuery marks the patient's messages the clinic has seen: those up to
	// a message ($3, 0 for none) or stored at or before a time ($4).
	markSeenByClinicQuery = `
		UPDATE secure_message SET read_at=$5
		WHERE login_id=$1 AND portal_id=$2 AND from_patient=true AND read_at=0 AND (id<=$3 OR created_at<=$4)
	`
	seenByClinicQuery = `
		SELECT COALESCE(MAX(id), 0) FROM secure_message
		WHERE login_id=$1 AND portal_id=$2 AND from_patient=true AND read_at<>0
	`
	setSecureEventIDQuery = `UPDATE secure_message SET event_id=$2 WHERE id=$1`
	getSecureEventIDQuery = `SELECT event_id FROM secure_message WHERE id=$1`
	// undeliveredQuery finds patient messages stored but not yet put into the room.
	undeliveredQuery = `
		SELECT ` + secureMessageColumns + ` FROM secure_message
		WHERE from_patient=true AND event_id='' AND created_at<=$1 ORDER BY id LIMIT $2
	`
)

// SecureMessage is one message of the secure chat's copy of a conversation. Body (the
// text, or the file name) and Data (the file) are sealed; KeyID names the key.
type SecureMessage struct {
	ID          int64
	LoginID     string
	PortalID    string
	FromPatient bool
	SenderName  string
	Kind        SecureMessageKind
	ContentType string
	Size        int64
	KeyID       string
	Body        []byte
	Data        []byte
	EventID     string // the Matrix event it mirrors
	CreatedAt   time.Time
	ReadAt      time.Time // staff messages: when the patient saw it; the patient's: when the clinic did
	// Thumb is a photo's sealed preview; only Insert and GetThumb fill it. HasThumb says
	// whether the row has one.
	Thumb    []byte
	HasThumb bool
	// Width and Height are the size the chat shows a photo at (the preview's), 0 if unknown.
	Width, Height int
}

// SecureMessageQuery runs the secure_message table's statements.
type SecureMessageQuery struct {
	*dbutil.QueryHelper[*SecureMessage]
}

// Scan reads one row.
func (m *SecureMessage) Scan(row dbutil.Scannable) (*SecureMessage, error) {
	var created, read int64
	err := row.Scan(&m.ID, &m.LoginID, &m.PortalID, &m.FromPatient, &m.SenderName, &m.Kind, &m.ContentType,
		&m.Size, &m.KeyID, &m.Body, &m.Data, &m.EventID, &created, &read, &m.HasThumb, &m.Width, &m.Height)
	if err != nil {
		return nil, err
	}
	m.CreatedAt, m.ReadAt = time.UnixMilli(created), unixMilliOrZero(read)
	return m, nil
}

// Insert stores a sealed message and sets its ID.
func (mq *SecureMessageQuery) Insert(ctx context.Context, m *SecureMessage) error {
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	return mq.GetDB().QueryRow(ctx, insertSecureMessageQuery, m.LoginID, m.PortalID, m.FromPatient, m.SenderName,
		m.Kind, m.ContentType, m.Size, m.KeyID, m.Body, m.Data, m.EventID, m.CreatedAt.UnixMilli(), m.Thumb, m.Width, m.Height).Scan(&m.ID)
}

// List returns up to limit messages of a conversation after afterID, oldest first, without file data.
func (mq *SecureMessageQuery) List(ctx context.Context, loginID, portalID string, afterID int64, limit int) ([]*SecureMessage, error) {
	return mq.QueryMany(ctx, listSecureMessagesQuery, loginID, portalID, afterID, limit)
}

// GetStaffByEvent returns the staff message of a conversation kept from a Matrix event,
// without file data, or nil.
func (mq *SecureMessageQuery) GetStaffByEvent(ctx context.Context, loginID, portalID, eventID string) (*SecureMessage, error) {
	return mq.QueryOne(ctx, getStaffByEventQuery, loginID, portalID, eventID)
}

// Get returns one message of a conversation with its file data, or nil.
func (mq *SecureMessageQuery) Get(ctx context.Context, id int64, loginID, portalID string) (*SecureMessage, error) {
	return mq.QueryOne(ctx, getSecureMessageQuery, id, loginID, portalID)
}

// GetThumb returns a photo's sealed preview and the key it is sealed with; nil when the
// message is not the conversation's or has no preview.
func (mq *SecureMessageQuery) GetThumb(ctx context.Context, id int64, loginID, portalID string) (keyID string, thumb []byte, err error) {
	err = mq.GetDB().QueryRow(ctx, getSecureThumbQuery, id, loginID, portalID).Scan(&keyID, &thumb)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, nil
	}
	return keyID, thumb, err
}

// MarkRead marks staff messages up to upToID read and reports how many were newly read.
func (mq *SecureMessageQuery) MarkRead(ctx context.Context, loginID, portalID string, upToID int64, at time.Time) (int64, error) {
	res, err := mq.GetDB().Exec(ctx, markSecureReadQuery, loginID, portalID, upToID, at.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// MarkSeenByClinic marks the patient's messages up to upToID (0: none), or stored at or
// before upTo, seen by the clinic, and reports how many were newly seen.
func (mq *SecureMessageQuery) MarkSeenByClinic(ctx context.Context, loginID, portalID string, upToID int64, upTo, at time.Time) (int64, error) {
	res, err := mq.GetDB().Exec(ctx, markSeenByClinicQuery, loginID, portalID, upToID, upTo.UnixMilli(), at.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// SeenByClinic returns the newest of the patient's messages the clinic has seen (0: none).
func (mq *SecureMessageQuery) SeenByClinic(ctx context.Context, loginID, portalID string) (id int64, err error) {
	err = mq.GetDB().QueryRow(ctx, seenByClinicQuery, loginID, portalID).Scan(&id)
	return
}

// UnreadStaffCount counts staff messages the patient has not seen.
func (mq *SecureMessageQuery) UnreadStaffCount(ctx context.Context, loginID, portalID string) (n int, err error) {
	err = mq.GetDB().QueryRow(ctx, unreadStaffCountQuery, loginID, portalID).Scan(&n)
	return
}

// Undelivered returns patient messages created at or before t that are not in the room yet.
func (mq *SecureMessageQuery) Undelivered(ctx context.Context, before time.Time, limit int) ([]*SecureMessage, error) {
	return mq.QueryMany(ctx, undeliveredQuery, before.UnixMilli(), limit)
}

// SetEventID records the Matrix event a message mirrors.
func (mq *SecureMessageQuery) SetEventID(ctx context.Context, id int64, eventID string) error {
	return mq.Exec(ctx, setSecureEventIDQuery, id, eventID)
}

// EventID returns the Matrix event a message was put into the room as ("" while it is
// not there yet, or when the message is gone).
func (mq *SecureMessageQuery) EventID(ctx context.Context, id int64) (eventID string, err error) {
	err = mq.GetDB().QueryRow(ctx, getSecureEventIDQuery, id).Scan(&eventID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return eventID, err
}

// LastAt is when the conversation's newest secure chat message was stored (zero: none).
func (mq *SecureMessageQuery) LastAt(ctx context.Context, loginID, portalID string) (time.Time, error) {
	var at int64
	err := mq.GetDB().QueryRow(ctx, `SELECT created_at FROM secure_message WHERE login_id=$1 AND portal_id=$2 ORDER BY id DESC LIMIT 1`,
		loginID, portalID).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	} else if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(at), nil
}
