package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/carebridge/carebridge/database"
)

// Backend is the bridge doing what the API asks; its errors of type *Error reach the caller.
type Backend interface {
	// ClinicNumbers returns the linked clinic numbers (E.164) and their login IDs.
	ClinicNumbers() map[string]string
	// NormalizePhone turns a patient number in any form the region allows into E.164.
	NormalizePhone(raw string) (string, error)
	// OpenConversation finds the conversation of the patient with the clinic number, or
	// creates it with its room, its staff and team invited (created: true).
	OpenConversation(ctx context.Context, actor database.AuditActor, loginID, patient string) (conv *database.Conversation, created bool, err error)
	// SetPatientName shows the patient's name in the room (audited).
	SetPatientName(ctx context.Context, actor database.AuditActor, conv *database.Conversation, name string) error
	// SetDOB records the date of birth the secure chat asks for (audited).
	SetDOB(ctx context.Context, actor database.AuditActor, conv *database.Conversation, dob string) error
	// SetSecure switches the conversation to secure mode (audited).
	SetSecure(ctx context.Context, actor database.AuditActor, conv *database.Conversation) error
	// CheckTemplate says whether a template of this name is configured (an *Error if not).
	CheckTemplate(name string) error
	// Template returns the configured template's text filled for the conversation.
	Template(ctx context.Context, actor database.AuditActor, conv *database.Conversation, name string) (string, error)
	// Send sends text to the patient: into the secure chat (with an alert) when secure is
	// true or the conversation is in secure mode, by SMS otherwise; the room sees it.
	Send(ctx context.Context, actor database.AuditActor, conv *database.Conversation, text string, secure bool) (*Sent, error)
	// LastActivity is when a message last went either way in the conversation.
	LastActivity(ctx context.Context, conv *database.Conversation) time.Time
	// UnreadByPatient counts staff messages in the secure chat the patient has not read.
	UnreadByPatient(ctx context.Context, conv *database.Conversation) int
}

// Sent is how a message went out.
type Sent struct {
	Via        database.Mode
	SecureID   int64
	MessageSID string
	Status     string
}

// maxMessageLength bounds a message's text (in characters).
const maxMessageLength = 4000

// ---- views ------------------------------------------------------------------------

// ConversationView is a conversation as the API shows it.
type ConversationView struct {
	ID           string      `json:"id"`
	ClinicNumber string      `json:"clinic_number"`
	Patient      PatientView `json:"patient"`
	Mode         string      `json:"mode"`
	OptedOut     bool        `json:"opted_out"`
	LastActivity time.Time   `json:"last_activity"`
	Unread       UnreadView  `json:"unread"`
	Assignee     string      `json:"assignee,omitempty"`
	Urgent       bool        `json:"urgent"`
	Closed       bool        `json:"closed"`
	CreatedAt    time.Time   `json:"created_at"`
}

// PatientView is the patient of a conversation.
type PatientView struct {
	Phone      string `json:"phone"`
	Name       string `json:"name,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
}

// UnreadView says who has something to read: staff (a patient message waits for a
// reply, since when) and the patient (staff messages unread in the secure chat).
type UnreadView struct {
	AwaitingStaffReply bool       `json:"awaiting_staff_reply"`
	WaitingSince       *time.Time `json:"waiting_since,omitempty"`
	UnreadByPatient    int        `json:"unread_by_patient"`
}

// MessageView is a message an integration sent.
type MessageView struct {
	ID             string     `json:"id"`
	ConversationID string     `json:"conversation_id"`
	Via            string     `json:"via"`
	State          string     `json:"state"`
	CreatedAt      time.Time  `json:"created_at"`
	ReadAt         *time.Time `json:"read_at,omitempty"`
}

// ---- requests ---------------------------------------------------------------------

type conversationRequest struct {
	ClinicNumber string `json:"clinic_number"`
	Patient      struct {
		Phone      string `json:"phone"`
		Name       string `json:"name"`
		BirthDate  string `json:"birth_date"`
		ExternalID string `json:"external_id"`
	} `json:"patient"`
	Mode     string `json:"mode"`
	Message  string `json:"message"`
	Template string `json:"template"`
}

type messageRequest struct {
	Text     string `json:"text"`
	Template string `json:"template"`
	Secure   bool   `json:"secure"`
}

// decodeStrict reads one JSON object into v, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syntax *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return apiError(http.StatusBadRequest, "malformed_json", "the request body is empty: send a JSON object")
		case errors.As(err, &syntax):
			return apiError(http.StatusBadRequest, "malformed_json", "the request body is not valid JSON (at byte %d)", syntax.Offset)
		case errors.As(err, &typeErr):
			return fieldError(typeErr.Field, "%s must be a %s", typeErr.Field, typeErr.Type.Kind())
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return fieldError(field, "%s is not a field of this request", field)
		default:
			return apiError(http.StatusBadRequest, "malformed_json", "the request body is not a valid JSON object")
		}
	}
	if dec.More() {
		return apiError(http.StatusBadRequest, "malformed_json", "the request body holds more than one JSON value")
	}
	return nil
}

// ---- handlers ---------------------------------------------------------------------

func (s *Server) postConversation(ctx context.Context, c *call, _ *http.Request, body []byte) (int, any, error) {
	var req conversationRequest
	if err := decodeStrict(body, &req); err != nil {
		return 0, nil, err
	}
	if req.Message != "" && req.Template != "" {
		return 0, nil, fieldError("template", "give a message or a template, not both")
	}
	if err := checkText("message", req.Message); err != nil {
		return 0, nil, err
	}
	if req.Mode != "" && req.Mode != string(database.ModeSMS) && req.Mode != string(database.ModeSecure) {
		return 0, nil, fieldError("mode", "mode is %q: use sms or secure", req.Mode)
	}
	if utf8.RuneCountInString(req.Patient.Name) > 100 {
		return 0, nil, fieldError("patient.name", "patient.name is longer than 100 characters")
	}
	if len(req.Patient.ExternalID) > 128 {
		return 0, nil, fieldError("patient.external_id", "patient.external_id is longer than 128 characters")
	}
	if req.Patient.Phone == "" {
		return 0, nil, fieldError("patient.phone", "patient.phone is required")
	}
	phone, err := s.backend.NormalizePhone(req.Patient.Phone)
	if err != nil {
		return 0, nil, fieldError("patient.phone", "patient.phone is not a phone number this clinic can text")
	}
	loginID, err := s.clinicLogin(c, req.ClinicNumber)
	if err != nil {
		return 0, nil, err
	}
	return s.startConversation(ctx, c, startRequest{loginID: loginID, phone: phone, name: req.Patient.Name,
		dob: req.Patient.BirthDate, externalID: req.Patient.ExternalID, secure: req.Mode == string(database.ModeSecure),
		message: req.Message, template: req.Template})
}

type startRequest struct {
	loginID, phone, name, dob, externalID string
	secure                                bool
	message, template                     string
}

type conversationResponse struct {
	Conversation *ConversationView `json:"conversation"`
	Created      bool              `json:"created"`
	Message      *MessageView      `json:"message,omitempty"`
}

func (s *Server) startConversation(ctx context.Context, c *call, req startRequest) (int, any, error) {
	// Everything the request can get wrong is checked before anything is created.
	if req.template != "" {
		if err := s.backend.CheckTemplate(req.template); err != nil {
			return 0, nil, err
		}
	}
	conv, apiConv, created, err := s.openConversation(ctx, c, req)
	if err != nil {
		return 0, nil, err
	}
	resp := &conversationResponse{Created: created}
	text := req.message
	if req.template != "" {
		if text, err = s.backend.Template(ctx, c.Actor(), conv, req.template); err != nil {
			return 0, nil, err
		}
	}
	if text != "" {
		if resp.Message, err = s.send(ctx, c, conv, apiConv, text, false, nil); err != nil {
			var e *Error
			if errors.As(err, &e) && e.Field == "text" {
				renamed := *e
				renamed.Field = "message"
				return 0, nil, &renamed
			}
			return 0, nil, err
		}
	}
	if resp.Conversation, err = s.conversationView(ctx, c, apiConv); err != nil {
		return 0, nil, err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return status, resp, nil
}

// openConversation finds or opens the patient's conversation (REST or FHIR) and records
// what the request says of the patient: external ID, name, date of birth, secure mode.
func (s *Server) openConversation(ctx context.Context, c *call, req startRequest) (*database.Conversation, *database.APIConversation, bool, error) {
	if req.name != "" {
		// A patient's name is one per number (their ghost's, in every room): an integration
		// restricted to some clinic numbers may not rename a patient who also talks to others.
		if err := s.checkMayName(ctx, c, req.phone); err != nil {
			return nil, nil, false, err
		}
	}
	if req.dob != "" {
		if _, err := time.Parse("2006-01-02", req.dob); err != nil {
			return nil, nil, false, fieldError("patient.birth_date", "patient.birth_date must be a date such as 1980-02-03")
		}
	}
	conv, created, err := s.backend.OpenConversation(ctx, c.Actor(), req.loginID, req.phone)
	if err != nil {
		return nil, nil, false, err
	}
	c.touch(conv)
	apiConv, err := s.apiConversation(ctx, conv)
	if err != nil {
		return nil, nil, false, err
	}
	if req.externalID != "" && req.externalID != apiConv.ExternalID {
		if err = s.db.Integration().SetExternalID(ctx, apiConv.ID, req.externalID); err != nil {
			return nil, nil, false, err
		}
		apiConv.ExternalID = req.externalID
	}
	if req.name != "" && req.name != conv.PatientName {
		if err = s.backend.SetPatientName(ctx, c.Actor(), conv, strings.Join(strings.Fields(req.name), " ")); err != nil {
			return nil, nil, false, err
		}
	}
	if req.dob != "" {
		if err = s.backend.SetDOB(ctx, c.Actor(), conv, req.dob); err != nil {
			return nil, nil, false, err
		}
	}
	// The API can raise a conversation to secure mode, never lower it: going back to SMS
	// is for staff (`!sms plain`), and the clinic's default_mode stands.
	if req.secure && conv.Mode != database.ModeSecure {
		if err = s.backend.SetSecure(ctx, c.Actor(), conv); err != nil {
			return nil, nil, false, err
		}
	}
	return conv, apiConv, created, nil
}

func (s *Server) getConversation(ctx context.Context, c *call, r *http.Request, _ []byte) (int, any, error) {
	apiConv, conv, err := s.findConversation(ctx, c, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	c.touch(conv)
	view, err := s.conversationView(ctx, c, apiConv)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"conversation": view}, nil
}

func (s *Server) postMessage(ctx context.Context, c *call, r *http.Request, body []byte) (int, any, error) {
	var req messageRequest
	if err := decodeStrict(body, &req); err != nil {
		return 0, nil, err
	}
	apiConv, conv, err := s.findConversation(ctx, c, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	c.touch(conv)
	switch {
	case req.Text != "" && req.Template != "":
		return 0, nil, fieldError("template", "give text or a template, not both")
	case req.Text == "" && req.Template == "":
		return 0, nil, fieldError("text", "text (or template) is required")
	}
	if err = checkText("text", req.Text); err != nil {
		return 0, nil, err
	}
	if req.Template != "" {
		if err = s.backend.CheckTemplate(req.Template); err != nil {
			return 0, nil, err
		}
	}
	text := req.Text
	if req.Template != "" {
		if text, err = s.backend.Template(ctx, c.Actor(), conv, req.Template); err != nil {
			return 0, nil, err
		}
	}
	msg, err := s.send(ctx, c, conv, apiConv, text, req.Secure, nil)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, map[string]any{"message": msg}, nil
}

func (s *Server) getMessage(ctx context.Context, c *call, r *http.Request, _ []byte) (int, any, error) {
	apiConv, conv, err := s.findConversation(ctx, c, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	c.touch(conv)
	m, err := s.db.Integration().Message(ctx, r.PathValue("message_id"))
	if err != nil {
		return 0, nil, err
	} else if m == nil || m.ConversationID != apiConv.ID || m.Integration != c.integ.Name {
		return 0, nil, apiError(http.StatusNotFound, "not_found", "no such message in this conversation")
	}
	view, err := s.messageView(ctx, m)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"message": view}, nil
}

// ---- shared -----------------------------------------------------------------------

func checkText(field, text string) error {
	if !utf8.ValidString(text) {
		return fieldError(field, "%s is not valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(text); n > maxMessageLength {
		return fieldError(field, "%s is %d characters; the limit is %d", field, n, maxMessageLength)
	}
	return nil
}

// clinicLogin picks the clinic number a new conversation uses: the one asked for, or the
// only one the integration may use.
func (s *Server) clinicLogin(c *call, number string) (string, error) {
	linked := s.backend.ClinicNumbers()
	if number != "" {
		loginID, ok := linked[number]
		if !ok || !c.integ.AllowsNumber(number) {
			return "", fieldError("clinic_number", "clinic_number %s is not a number this integration may use (write it in E.164 form, e.g. +15550001111)", number)
		}
		return loginID, nil
	}
	var usable []string
	for n := range linked {
		if c.integ.AllowsNumber(n) {
			usable = append(usable, n)
		}
	}
	switch len(usable) {
	case 1:
		return linked[usable[0]], nil
	case 0:
		return "", apiError(http.StatusConflict, "number_not_linked", "no clinic number this integration may use is linked to the bridge")
	default:
		return "", fieldError("clinic_number", "clinic_number is required: this integration may use several numbers")
	}
}

// findConversation returns a conversation the integration may see, or 404.
func (s *Server) findConversation(ctx context.Context, c *call, id string) (*database.APIConversation, *database.Conversation, error) {
	notFound := apiError(http.StatusNotFound, "not_found", "no conversation %s", id)
	apiConv, err := s.db.Integration().Conversation(ctx, id)
	if err != nil {
		return nil, nil, err
	} else if apiConv == nil {
		return nil, nil, notFound
	}
	conv, err := s.db.Conversation.Get(ctx, apiConv.LoginID, apiConv.PortalID)
	if err != nil {
		return nil, nil, err
	} else if conv == nil || !c.integ.AllowsNumber(conv.ClinicPhone) {
		return nil, nil, notFound
	}
	return apiConv, conv, nil
}

// checkMayName refuses a name from an integration restricted to some clinic numbers when
// the patient also has a conversation on a number it may not use.
func (s *Server) checkMayName(ctx context.Context, c *call, patientPhone string) error {
	if len(c.integ.Numbers) == 0 {
		return nil
	}
	convs, err := s.db.Conversation.ListByPatient(ctx, patientPhone)
	if err != nil {
		return err
	}
	for _, conv := range convs {
		if !c.integ.AllowsNumber(conv.ClinicPhone) {
			return &Error{Status: http.StatusForbidden, Code: "forbidden", Field: "patient.name",
				Message: "patient.name cannot be set: the patient also talks to a clinic number this integration may not use, " +
					"and a name shows in all of their conversations; leave it out (staff can name them with !sms name)"}
		}
	}
	return nil
}

// patientName is the name the integration may see: given on one of the numbers it may use.
func (s *Server) patientName(ctx context.Context, c *call, conv *database.Conversation) string {
	if len(c.integ.Numbers) == 0 {
		if conv.PatientName != "" {
			return conv.PatientName
		}
		name, _ := s.db.Conversation.GetPatientName(ctx, conv.PatientPhone)
		return name
	}
	convs, err := s.db.Conversation.ListByPatient(ctx, conv.PatientPhone)
	if err != nil {
		return ""
	}
	for _, other := range convs {
		if other.PatientName != "" && c.integ.AllowsNumber(other.ClinicPhone) {
			return other.PatientName
		}
	}
	return ""
}

// apiConversation returns the conversation's API handle, giving it one if needed.
func (s *Server) apiConversation(ctx context.Context, conv *database.Conversation) (*database.APIConversation, error) {
	return s.db.Integration().EnsureConversation(ctx, conv.LoginID, conv.PortalID, newID("conv"))
}

func (s *Server) conversationView(ctx context.Context, c *call, apiConv *database.APIConversation) (*ConversationView, error) {
	conv, err := s.db.Conversation.Get(ctx, apiConv.LoginID, apiConv.PortalID)
	if err != nil {
		return nil, err
	} else if conv == nil {
		return nil, fmt.Errorf("conversation %s has no row", apiConv.ID)
	}
	name := s.patientName(ctx, c, conv)
	v := &ConversationView{
		ID:           apiConv.ID,
		ClinicNumber: conv.ClinicPhone,
		Patient:      PatientView{Phone: conv.PatientPhone, Name: name, ExternalID: apiConv.ExternalID},
		Mode:         string(conv.Mode),
		OptedOut:     conv.OptedOut,
		LastActivity: s.backend.LastActivity(ctx, conv).UTC(),
		Assignee:     conv.Assignee,
		Urgent:       conv.Urgent,
		Closed:       !conv.ClosedAt.IsZero(),
		CreatedAt:    conv.CreatedAt.UTC(),
	}
	if !conv.WaitingSince.IsZero() {
		since := conv.WaitingSince.UTC()
		v.Unread.AwaitingStaffReply, v.Unread.WaitingSince = true, &since
	}
	v.Unread.UnreadByPatient = s.backend.UnreadByPatient(ctx, conv)
	return v, nil
}

// send sends a message and records it; resource is a FHIR Communication to keep with it.
func (s *Server) send(ctx context.Context, c *call, conv *database.Conversation, apiConv *database.APIConversation,
	text string, secure bool, resource func(id string) ([]byte, error)) (*MessageView, error) {
	sent, err := s.backend.Send(ctx, c.Actor(), conv, text, secure)
	if err != nil {
		return nil, err
	}
	prefix := "msg"
	if resource != nil {
		prefix = communicationPrefix
	}
	m := &database.APIMessage{ID: newID(prefix), Integration: c.integ.Name, ConversationID: apiConv.ID, LoginID: conv.LoginID,
		PortalID: conv.PortalID, Via: sent.Via, SecureID: sent.SecureID, MessageSID: sent.MessageSID, CreatedAt: time.Now()}
	if resource != nil {
		data, err := resource(m.ID)
		if err != nil {
			return nil, err
		}
		if m.KeyID, m.Resource, err = s.opts.Keys.Seal(data, resourceAdditional(m.ID)); err != nil {
			return nil, err
		}
	}
	if err = s.db.Integration().InsertMessage(ctx, m); err != nil {
		// Sent, but not recorded: the caller must not send it again.
		s.log.Err(err).Str("message_id", m.ID).Msg("Failed to record a message sent through the API")
	}
	view := &MessageView{ID: m.ID, ConversationID: apiConv.ID, Via: string(sent.Via), State: sent.Status, CreatedAt: m.CreatedAt.UTC()}
	if view.State == "" {
		view.State = "sent"
	}
	return view, nil
}

func resourceAdditional(id string) []byte { return []byte("fhir-communication:" + id) }

// messageView is the message's state now: Twilio's status for a text; sent or read for
// the secure chat.
func (s *Server) messageView(ctx context.Context, m *database.APIMessage) (*MessageView, error) {
	v := &MessageView{ID: m.ID, ConversationID: m.ConversationID, Via: string(m.Via), State: "sent", CreatedAt: m.CreatedAt.UTC()}
	if m.Via == database.ModeSMS && m.MessageSID != "" {
		out, err := s.db.Outbound.Get(ctx, m.MessageSID)
		if err != nil {
			return nil, err
		} else if out != nil {
			v.State = out.Status
		}
	}
	if !m.ReadAt.IsZero() {
		at := m.ReadAt.UTC()
		v.State, v.ReadAt = "read", &at
	}
	return v, nil
}

// newID is an opaque random identifier with a prefix ("conv_…", "msg_…").
func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}
