package database

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"go.mau.fi/util/dbutil"
)

// Mode is how a conversation reaches the patient.
type Mode string

const (
	// ModeSMS sends staff messages as SMS.
	ModeSMS Mode = "sms"
	// ModeSecure keeps content off SMS: the patient reads it in the secure web chat.
	ModeSecure Mode = "secure"
)

const (
	conversationColumns = `login_id, portal_id, clinic_phone, patient_phone, patient_name, mode, opted_out, room_ready, created_at, dob_hash, last_alert_at,
		assignee, urgent, closed_at, waiting_since, after_hours_at, alert_due_at, reminded_at, patient_language`
	getConversationQuery    = `SELECT ` + conversationColumns + ` FROM conversation WHERE login_id=$1 AND portal_id=$2`
	insertConversationQuery = `
		INSERT INTO conversation (login_id, portal_id, clinic_phone, patient_phone, patient_name, mode, opted_out, room_ready, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (login_id, portal_id) DO NOTHING
	`
	setRoomReadyQuery  = `UPDATE conversation SET room_ready=true WHERE login_id=$1 AND portal_id=$2`
	roomsToPolicyQuery = `
		SELECT login_id, portal_id FROM conversation
		WHERE room_ready AND (room_acl IS NULL OR room_acl<>$1 OR room_masked<>$2)
		ORDER BY login_id, portal_id LIMIT $3
	`
	setRoomPolicyQuery   = `UPDATE conversation SET room_acl=$3, room_masked=$4 WHERE login_id=$1 AND portal_id=$2`
	getRoomPolicyQuery   = `SELECT room_acl, room_masked FROM conversation WHERE login_id=$1 AND portal_id=$2`
	getPinnedNoticeQuery = `SELECT pinned_notice FROM conversation WHERE login_id=$1 AND portal_id=$2`
	setPinnedNoticeQuery = `UPDATE conversation SET pinned_notice=$3 WHERE login_id=$1 AND portal_id=$2`
	setModeQuery         = `UPDATE conversation SET mode=$3 WHERE login_id=$1 AND portal_id=$2`
	setDOBHashQuery      = `UPDATE conversation SET dob_hash=$3 WHERE login_id=$1 AND portal_id=$2`
	// claimAlertQuery takes the quiet period atomically: only one alert per period is sent.
	claimAlertQuery = `UPDATE conversation SET last_alert_at=$3, alert_due_at=0 WHERE login_id=$1 AND portal_id=$2 AND last_alert_at<=$4`
	// holdAlertQuery keeps an alert for when the quiet period ends, unless one is kept already.
	holdAlertQuery = `UPDATE conversation SET alert_due_at=$3 WHERE login_id=$1 AND portal_id=$2 AND alert_due_at=0`
	// Secure conversations with a held-back alert due, or alerted before remindBefore and
	// not reminded since.
	alertsDueQuery = `SELECT ` + conversationColumns + ` FROM conversation
		WHERE mode='secure' AND ((alert_due_at>0 AND alert_due_at<=$1)
		   OR (last_alert_at>0 AND last_alert_at<=$2 AND reminded_at<last_alert_at))
		ORDER BY login_id, portal_id LIMIT $3`
	nextAlertQuery = `SELECT MIN(CASE WHEN alert_due_at>0 THEN alert_due_at ELSE $1 END),
		MIN(CASE WHEN last_alert_at>0 AND reminded_at<last_alert_at THEN last_alert_at ELSE $1 END)
		FROM conversation WHERE mode='secure'`
	clearAlertQuery     = `UPDATE conversation SET alert_due_at=0 WHERE login_id=$1 AND portal_id=$2`
	claimReminderQuery  = `UPDATE conversation SET reminded_at=$3 WHERE login_id=$1 AND portal_id=$2 AND reminded_at<last_alert_at`
	setPatientLangQuery = `UPDATE conversation SET patient_language=$3 WHERE login_id=$1 AND portal_id=$2 AND patient_language<>$3`
	setOptedOutQuery    = `UPDATE conversation SET opted_out=$3 WHERE login_id=$1 AND portal_id=$2`
	setPatientNameQuery = `UPDATE conversation SET patient_name=$2 WHERE patient_phone=$1`
	getPatientNameQuery = `
		SELECT patient_name FROM conversation WHERE patient_phone=$1 AND patient_name<>''
		ORDER BY created_at DESC LIMIT 1
	`
	listByPatientQuery = `SELECT ` + conversationColumns + ` FROM conversation WHERE patient_phone=$1 ORDER BY created_at DESC`
	countByLoginQuery  = `SELECT COUNT(*) FROM conversation WHERE login_id=$1`
	deleteByLoginQuery = `DELETE FROM conversation WHERE login_id=$1`
)

// Conversation is carebridge's state for one portal: a clinic number and a patient number.
type Conversation struct {
	LoginID      string
	PortalID     string
	ClinicPhone  string
	PatientPhone string
	PatientName  string
	Mode         Mode
	OptedOut     bool
	RoomReady    bool
	CreatedAt    time.Time
	DOBHash      string // keyed hash of the date of birth staff recorded, or ""
	LastAlertAt  time.Time

	// Workflow: who owns it, whether it is urgent, when it was closed (zero: open), since
	// when a patient message waits for a staff reply (zero: nobody waits), and when the
	// after-hours reply was last texted.
	Assignee     string
	Urgent       bool
	ClosedAt     time.Time
	WaitingSince time.Time
	AfterHoursAt time.Time

	// Secure mode alerts: a held-back alert due then (zero: none), when the reminder for
	// unread messages was texted, and the language the patient chose ("": the clinic's).
	AlertDueAt      time.Time
	RemindedAt      time.Time
	PatientLanguage string
}

// ConversationQuery runs the conversation table's statements.
type ConversationQuery struct {
	*dbutil.QueryHelper[*Conversation]
}

// Scan reads one row.
func (c *Conversation) Scan(row dbutil.Scannable) (*Conversation, error) {
	var createdAt, lastAlert, closedAt, waitingSince, afterHoursAt, alertDue, reminded int64
	err := row.Scan(&c.LoginID, &c.PortalID, &c.ClinicPhone, &c.PatientPhone, &c.PatientName,
		&c.Mode, &c.OptedOut, &c.RoomReady, &createdAt, &c.DOBHash, &lastAlert,
		&c.Assignee, &c.Urgent, &closedAt, &waitingSince, &afterHoursAt, &alertDue, &reminded, &c.PatientLanguage)
	if err != nil {
		return nil, err
	}
	c.CreatedAt = time.UnixMilli(createdAt)
	c.LastAlertAt = unixMilliOrZero(lastAlert)
	c.ClosedAt = unixMilliOrZero(closedAt)
	c.WaitingSince = unixMilliOrZero(waitingSince)
	c.AfterHoursAt = unixMilliOrZero(afterHoursAt)
	c.AlertDueAt = unixMilliOrZero(alertDue)
	c.RemindedAt = unixMilliOrZero(reminded)
	return c, nil
}

// Get returns the conversation, or nil when there is none.
func (cq *ConversationQuery) Get(ctx context.Context, loginID, portalID string) (*Conversation, error) {
	return cq.QueryOne(ctx, getConversationQuery, loginID, portalID)
}

// GetOrCreate stores c unless the conversation exists, and returns the stored row.
func (cq *ConversationQuery) GetOrCreate(ctx context.Context, c *Conversation) (*Conversation, error) {
	if c.Mode == "" {
		c.Mode = ModeSMS
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	err := cq.Exec(ctx, insertConversationQuery, c.LoginID, c.PortalID, c.ClinicPhone, c.PatientPhone,
		c.PatientName, c.Mode, c.OptedOut, c.RoomReady, c.CreatedAt.UnixMilli())
	if err != nil {
		return nil, err
	}
	return cq.Get(ctx, c.LoginID, c.PortalID)
}

// SetRoomReady records that the room's staff invites and relay are done.
func (cq *ConversationQuery) SetRoomReady(ctx context.Context, loginID, portalID string) error {
	return cq.Exec(ctx, setRoomReadyQuery, loginID, portalID)
}

// ConversationKey names a conversation.
type ConversationKey struct{ LoginID, PortalID string }

// RoomsNotAt returns up to limit conversations with a room whose last applied room
// policy is not policy.
func (cq *ConversationQuery) RoomsNotAt(ctx context.Context, policy RoomPolicy, limit int) ([]ConversationKey, error) {
	rows, err := cq.GetDB().Query(ctx, roomsToPolicyQuery, policy.acl(), policy.MaskNames, limit)
	return dbutil.NewRowIterWithError(rows, func(row dbutil.Scannable) (k ConversationKey, err error) {
		err = row.Scan(&k.LoginID, &k.PortalID)
		return
	}, err).AsList()
}

// RoomPolicy is the room policy last applied to the conversation's room (nil if none).
func (cq *ConversationQuery) RoomPolicy(ctx context.Context, loginID, portalID string) (*RoomPolicy, error) {
	var acl sql.NullString
	var masked bool
	if err := cq.GetDB().QueryRow(ctx, getRoomPolicyQuery, loginID, portalID).Scan(&acl, &masked); err != nil {
		return nil, err
	} else if !acl.Valid {
		return nil, nil
	}
	return &RoomPolicy{AllowedServers: splitServers(acl.String), MaskNames: masked}, nil
}

// PinnedNotice is the event ID of the bridge's pinned patient notice ("" if none).
func (cq *ConversationQuery) PinnedNotice(ctx context.Context, loginID, portalID string) (eventID string, err error) {
	err = cq.GetDB().QueryRow(ctx, getPinnedNoticeQuery, loginID, portalID).Scan(&eventID)
	return
}

// SetPinnedNotice records the bridge's pinned patient notice.
func (cq *ConversationQuery) SetPinnedNotice(ctx context.Context, loginID, portalID, eventID string) error {
	return cq.Exec(ctx, setPinnedNoticeQuery, loginID, portalID, eventID)
}

// SetRoomPolicy records the room policy applied to the conversation's room.
func (cq *ConversationQuery) SetRoomPolicy(ctx context.Context, loginID, portalID string, policy RoomPolicy) error {
	return cq.Exec(ctx, setRoomPolicyQuery, loginID, portalID, policy.acl(), policy.MaskNames)
}

// RoomPolicy is what the bridge puts into a conversation room for federation; a change
// in the config is applied to each room once (RoomsNotAt).
type RoomPolicy struct {
	// AllowedServers is the server ACL's allow-list, in the config's order (the bridge's
	// own server first).
	AllowedServers []string
	// MaskNames is privacy.mask_room_names: the room's name and topic show only the last
	// four digits of the patient's number.
	MaskNames bool
}

// acl is the allow-list as stored: comma-separated (Matrix server names hold no comma).
func (p RoomPolicy) acl() string { return strings.Join(p.AllowedServers, ",") }

func splitServers(acl string) []string {
	if acl == "" {
		return []string{}
	}
	return strings.Split(acl, ",")
}

// SetMode switches the conversation between SMS and secure mode.
func (cq *ConversationQuery) SetMode(ctx context.Context, loginID, portalID string, mode Mode) error {
	return cq.Exec(ctx, setModeQuery, loginID, portalID, mode)
}

// SetDOBHash records (or, with "", clears) the keyed hash of the patient's date of birth.
func (cq *ConversationQuery) SetDOBHash(ctx context.Context, loginID, portalID, dobHash string) error {
	return cq.Exec(ctx, setDOBHashQuery, loginID, portalID, dobHash)
}

// ClaimAlert takes the right to text an alert now, unless one was sent within quiet.
// Two concurrent callers cannot both win.
func (cq *ConversationQuery) ClaimAlert(ctx context.Context, loginID, portalID string, now time.Time, quiet time.Duration) (bool, error) {
	res, err := cq.GetDB().Exec(ctx, claimAlertQuery, loginID, portalID, now.UnixMilli(), now.Add(-quiet).UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// HoldAlert keeps an alert for due, when the quiet period ends (an alert already held
// keeps its time).
func (cq *ConversationQuery) HoldAlert(ctx context.Context, loginID, portalID string, due time.Time) error {
	return cq.Exec(ctx, holdAlertQuery, loginID, portalID, due.UnixMilli())
}

// ClearAlert drops a held-back alert (the patient read everything meanwhile).
func (cq *ConversationQuery) ClearAlert(ctx context.Context, loginID, portalID string) error {
	return cq.Exec(ctx, clearAlertQuery, loginID, portalID)
}

// AlertsDue returns up to limit secure conversations whose held-back alert is due at now,
// or whose last alert was texted before remindBefore without a reminder since.
func (cq *ConversationQuery) AlertsDue(ctx context.Context, now, remindBefore time.Time, limit int) ([]*Conversation, error) {
	return cq.QueryMany(ctx, alertsDueQuery, now.UnixMilli(), remindBefore.UnixMilli(), limit)
}

// NextAlert returns the earliest held-back alert's time and the earliest last alert not
// yet reminded of (each zero when there is none).
func (cq *ConversationQuery) NextAlert(ctx context.Context) (due, lastUnreminded time.Time, err error) {
	const none = int64(1) << 62
	var a, b sql.NullInt64
	if err = cq.GetDB().QueryRow(ctx, nextAlertQuery, none).Scan(&a, &b); err != nil {
		return
	}
	if a.Valid && a.Int64 != none {
		due = time.UnixMilli(a.Int64)
	}
	if b.Valid && b.Int64 != none {
		lastUnreminded = time.UnixMilli(b.Int64)
	}
	return
}

// ClaimReminder takes the right to text the reminder for the current alert; two callers
// cannot both win.
func (cq *ConversationQuery) ClaimReminder(ctx context.Context, loginID, portalID string, now time.Time) (bool, error) {
	res, err := cq.GetDB().Exec(ctx, claimReminderQuery, loginID, portalID, now.UnixMilli())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SetPatientLanguage remembers the language the patient chose on the secure chat's pages.
func (cq *ConversationQuery) SetPatientLanguage(ctx context.Context, loginID, portalID, lang string) error {
	return cq.Exec(ctx, setPatientLangQuery, loginID, portalID, lang)
}

// ListByPatient returns every conversation with a patient number, newest first.
func (cq *ConversationQuery) ListByPatient(ctx context.Context, patientPhone string) ([]*Conversation, error) {
	return cq.QueryMany(ctx, listByPatientQuery, patientPhone)
}

// SetOptedOut records the patient's STOP or START.
func (cq *ConversationQuery) SetOptedOut(ctx context.Context, loginID, portalID string, optedOut bool) error {
	return cq.Exec(ctx, setOptedOutQuery, loginID, portalID, optedOut)
}

// SetPatientName records the name staff gave a patient number, in every conversation
// with that number (the patient's ghost is one per number).
func (cq *ConversationQuery) SetPatientName(ctx context.Context, patientPhone, name string) error {
	return cq.Exec(ctx, setPatientNameQuery, patientPhone, name)
}

// GetPatientName returns the name staff gave a patient number, or "".
func (cq *ConversationQuery) GetPatientName(ctx context.Context, patientPhone string) (name string, err error) {
	err = cq.GetDB().QueryRow(ctx, getPatientNameQuery, patientPhone).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return
}

// CountByLogin counts a clinic number's conversations.
func (cq *ConversationQuery) CountByLogin(ctx context.Context, loginID string) (n int, err error) {
	err = cq.GetDB().QueryRow(ctx, countByLoginQuery, loginID).Scan(&n)
	return
}

// DeleteByLogin removes a clinic number's conversations (when its login is deleted).
func (cq *ConversationQuery) DeleteByLogin(ctx context.Context, loginID string) error {
	return cq.Exec(ctx, deleteByLoginQuery, loginID)
}

const setUrgentQuery = `UPDATE conversation SET urgent=$3 WHERE login_id=$1 AND portal_id=$2`

// SetUrgent marks the conversation urgent or routine.
func (cq *ConversationQuery) SetUrgent(ctx context.Context, loginID, portalID string, urgent bool) error {
	return cq.Exec(ctx, setUrgentQuery, loginID, portalID, urgent)
}
