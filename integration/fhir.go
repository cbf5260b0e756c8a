package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/carebridge/carebridge/database"
)

// FHIR R4 Communication: an EHR sends a secure message to a patient as a Communication
// whose recipient is a Patient with a phone (contained), or a Patient carebridge knows by
// its id (a conversation started with that external_id). Invalid resources get an
// OperationOutcome saying what is wrong and where.

// communicationPrefix starts the ID of a message sent as a FHIR Communication.
const communicationPrefix = "comm"

type fhirReference struct {
	Reference  string `json:"reference"`
	Type       string `json:"type"`
	Identifier *struct {
		System string `json:"system"`
		Value  string `json:"value"`
	} `json:"identifier"`
}

type fhirPatient struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Identifier   []struct {
		Value string `json:"value"`
	} `json:"identifier"`
	Name []struct {
		Text   string   `json:"text"`
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
	Telecom []struct {
		System string `json:"system"`
		Value  string `json:"value"`
		Use    string `json:"use"`
	} `json:"telecom"`
	BirthDate string `json:"birthDate"`
}

type fhirCommunication struct {
	ResourceType string            `json:"resourceType"`
	Status       string            `json:"status"`
	Contained    []json.RawMessage `json:"contained"`
	Recipient    []fhirReference   `json:"recipient"`
	Sender       *fhirReference    `json:"sender"`
	Payload      []struct {
		ContentString     *string         `json:"contentString"`
		ContentAttachment json.RawMessage `json:"contentAttachment"`
		ContentReference  json.RawMessage `json:"contentReference"`
	} `json:"payload"`
	Category []json.RawMessage `json:"category"`
}

// fhirStatuses are Communication.status's codes (event-status).
var fhirStatuses = map[string]bool{"preparation": true, "in-progress": true, "not-done": true, "on-hold": true,
	"stopped": true, "completed": true, "entered-in-error": true, "unknown": true}

func fhirIssue(code, expression, format string, args ...any) *Error {
	e := apiError(http.StatusUnprocessableEntity, code, format, args...)
	if code == "structure" {
		e.Status = http.StatusBadRequest
	}
	e.Field = expression
	return e
}

func (s *Server) postCommunication(ctx context.Context, c *call, r *http.Request, body []byte) (int, any, error) {
	var resource map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resource); err != nil || dec.More() {
		return 0, nil, fhirIssue("structure", "", "the body is not a JSON resource")
	}
	var comm fhirCommunication
	if err := json.Unmarshal(body, &comm); err != nil {
		return 0, nil, fhirIssue("structure", "Communication", "the resource does not have the shape of a Communication: %s", jsonProblem(err))
	}
	if comm.ResourceType != "Communication" {
		return 0, nil, fhirIssue("invalid", "resourceType", "resourceType is %q: this endpoint takes a Communication", comm.ResourceType)
	}
	if comm.Status == "" {
		return 0, nil, fhirIssue("required", "Communication.status", "Communication.status is required (e.g. in-progress)")
	} else if !fhirStatuses[comm.Status] {
		return 0, nil, fhirIssue("code-invalid", "Communication.status", "Communication.status %q is not an event-status code", comm.Status)
	} else if comm.Status != "preparation" && comm.Status != "in-progress" {
		return 0, nil, fhirIssue("business-rule", "Communication.status",
			"Communication.status is %q: carebridge sends a Communication that is preparation or in-progress", comm.Status)
	}
	text, err := communicationText(&comm)
	if err != nil {
		return 0, nil, err
	}
	if len(comm.Recipient) != 1 {
		return 0, nil, fhirIssue("required", "Communication.recipient", "Communication.recipient must name exactly one Patient")
	}
	conv, apiConv, err := s.communicationRecipient(ctx, c, &comm)
	if err != nil {
		return 0, nil, err
	}
	c.touch(conv)
	sentAt := time.Now().UTC()
	msg, err := s.send(ctx, c, conv, apiConv, text, true, func(id string) ([]byte, error) {
		resource["id"] = id
		resource["sent"] = sentAt.Format(time.RFC3339)
		return json.Marshal(resource)
	})
	if err != nil {
		return 0, nil, err
	}
	m, err := s.db.Integration().Message(ctx, msg.ID)
	if err != nil || m == nil {
		// Sent; the resource is answered as it was made.
		return http.StatusCreated, communicationView(resource, msg.ID, time.Time{}, sentAt), nil
	}
	return s.communicationAnswer(http.StatusCreated, m)
}

func (s *Server) getCommunication(ctx context.Context, c *call, r *http.Request, _ []byte) (int, any, error) {
	m, err := s.db.Integration().Message(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	notFound := fhirIssue("not-found", "", "no Communication %s", r.PathValue("id"))
	notFound.Status = http.StatusNotFound
	// Only Communications, and only the integration's own.
	if m == nil || !strings.HasPrefix(m.ID, communicationPrefix+"_") || m.Integration != c.integ.Name {
		return 0, nil, notFound
	}
	conv, err := s.db.Conversation.Get(ctx, m.LoginID, m.PortalID)
	if err != nil {
		return 0, nil, err
	} else if conv == nil || !c.integ.AllowsNumber(conv.ClinicPhone) {
		return 0, nil, notFound
	}
	c.touch(conv)
	return s.communicationAnswer(http.StatusOK, m)
}

// communicationAnswer is the stored Communication with its state now: in-progress until
// the patient read it, then completed (received: when). After retention the text is gone
// and only the state is answered.
func (s *Server) communicationAnswer(status int, m *database.APIMessage) (int, any, error) {
	resource := map[string]any{"resourceType": "Communication"}
	if m.Resource != nil {
		data, err := s.opts.Keys.Open(m.KeyID, m.Resource, resourceAdditional(m.ID))
		if err != nil {
			return 0, nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err = dec.Decode(&resource); err != nil {
			return 0, nil, err
		}
	}
	return status, communicationView(resource, m.ID, m.ReadAt, m.CreatedAt), nil
}

func communicationView(resource map[string]any, id string, readAt, sentAt time.Time) map[string]any {
	resource["id"] = id
	resource["status"] = "in-progress"
	resource["sent"] = sentAt.UTC().Format(time.RFC3339)
	lastUpdated := sentAt
	if !readAt.IsZero() {
		resource["status"] = "completed"
		resource["received"] = readAt.UTC().Format(time.RFC3339)
		lastUpdated = readAt
	}
	resource["meta"] = map[string]any{"lastUpdated": lastUpdated.UTC().Format(time.RFC3339Nano)}
	return resource
}

// communicationText is the message: every payload's contentString, in order.
func communicationText(comm *fhirCommunication) (string, error) {
	if len(comm.Payload) == 0 {
		return "", fhirIssue("required", "Communication.payload", "Communication.payload is required, with a contentString")
	}
	var parts []string
	for i, p := range comm.Payload {
		switch {
		case p.ContentString != nil:
			if strings.TrimSpace(*p.ContentString) == "" {
				return "", fhirIssue("required", payloadPath(i), "Communication.payload[%d].contentString is empty", i)
			}
			parts = append(parts, *p.ContentString)
		case len(p.ContentAttachment) > 0 || len(p.ContentReference) > 0:
			return "", fhirIssue("not-supported", payloadPath(i), "Communication.payload[%d]: only contentString is supported (attachments go through the secure chat)", i)
		default:
			return "", fhirIssue("required", payloadPath(i), "Communication.payload[%d] has no contentString", i)
		}
	}
	text := strings.Join(parts, "\n\n")
	if err := checkText("Communication.payload", text); err != nil {
		return "", fhirIssue("too-long", "Communication.payload", "%s", err.Error())
	}
	return text, nil
}

func payloadPath(i int) string { return "Communication.payload[" + strconv.Itoa(i) + "]" }

// communicationRecipient finds or opens the conversation with the recipient Patient.
func (s *Server) communicationRecipient(ctx context.Context, c *call, comm *fhirCommunication) (*database.Conversation, *database.APIConversation, error) {
	ref := comm.Recipient[0]
	const where = "Communication.recipient[0]"
	if ref.Type != "" && ref.Type != "Patient" {
		return nil, nil, fhirIssue("invalid", where, "the recipient is a %s: carebridge sends to a Patient", ref.Type)
	}
	switch {
	case strings.HasPrefix(ref.Reference, "#"):
		patient, err := containedPatient(comm.Contained, strings.TrimPrefix(ref.Reference, "#"))
		if err != nil {
			return nil, nil, err
		}
		return s.openForPatient(ctx, c, comm, patient)
	case strings.HasPrefix(ref.Reference, "Patient/"), ref.Reference == "" && ref.Identifier != nil:
		known := strings.TrimPrefix(ref.Reference, "Patient/")
		if ref.Reference == "" {
			known = ref.Identifier.Value
		}
		if strings.TrimSpace(known) == "" {
			return nil, nil, fhirIssue("required", where, "the recipient Patient reference has no id")
		}
		candidates, err := s.db.Integration().ConversationsByExternalID(ctx, known)
		if err != nil {
			return nil, nil, err
		}
		var conv *database.Conversation
		var apiConv *database.APIConversation
		for _, cand := range candidates {
			found, err := s.db.Conversation.Get(ctx, cand.LoginID, cand.PortalID)
			if err != nil {
				return nil, nil, err
			} else if found != nil && c.integ.AllowsNumber(found.ClinicPhone) {
				conv, apiConv = found, cand
				break
			}
		}
		if conv == nil {
			e := fhirIssue("not-found", where, "Patient %s is not known to carebridge: contain the Patient (with a telecom phone) in the Communication, "+
				"or start the conversation with external_id %s first", known, known)
			return nil, nil, e
		}
		return conv, apiConv, nil
	case ref.Reference == "":
		return nil, nil, fhirIssue("required", where, "the recipient needs a reference: #id of a contained Patient, or Patient/id")
	default:
		return nil, nil, fhirIssue("invalid", where, "the recipient %q is not a Patient reference", ref.Reference)
	}
}

func containedPatient(contained []json.RawMessage, id string) (*fhirPatient, error) {
	for i, raw := range contained {
		var p fhirPatient
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fhirIssue("structure", "Communication.contained["+strconv.Itoa(i)+"]", "a contained resource is malformed: %s", jsonProblem(err))
		}
		if p.ID == id {
			if p.ResourceType != "Patient" {
				return nil, fhirIssue("invalid", "Communication.contained["+strconv.Itoa(i)+"]", "the recipient #%s is a %s, not a Patient", id, p.ResourceType)
			}
			return &p, nil
		}
	}
	return nil, fhirIssue("not-found", "Communication.recipient[0]", "no contained resource has the id %q", id)
}

func (s *Server) openForPatient(ctx context.Context, c *call, comm *fhirCommunication, p *fhirPatient) (*database.Conversation, *database.APIConversation, error) {
	phone := ""
	for _, t := range p.Telecom {
		if (t.System == "sms" || t.System == "phone") && t.Value != "" && (phone == "" || t.Use == "mobile" || t.System == "sms") {
			phone = t.Value
		}
	}
	if phone == "" {
		return nil, nil, fhirIssue("required", "Patient.telecom", "the recipient Patient has no telecom with system phone or sms")
	}
	e164, err := s.backend.NormalizePhone(phone)
	if err != nil {
		return nil, nil, fhirIssue("value", "Patient.telecom", "the Patient's phone is not a number this clinic can text")
	}
	number := ""
	if comm.Sender != nil && comm.Sender.Identifier != nil {
		number = comm.Sender.Identifier.Value
	}
	loginID, err := s.clinicLogin(c, number)
	if err != nil {
		if e, ok := err.(*Error); ok && e.Field == "clinic_number" {
			return nil, nil, fhirIssue("required", "Communication.sender", "give the clinic number as Communication.sender.identifier.value: %s", e.Message)
		}
		return nil, nil, err
	}
	req := startRequest{loginID: loginID, phone: e164, dob: p.BirthDate}
	if len(p.Name) > 0 {
		req.name = p.Name[0].Text
		if req.name == "" {
			req.name = strings.TrimSpace(strings.Join(append(append([]string{}, p.Name[0].Given...), p.Name[0].Family), " "))
		}
	}
	if len(p.Identifier) > 0 {
		req.externalID = p.Identifier[0].Value
	}
	if req.dob != "" {
		if _, err := time.Parse("2006-01-02", req.dob); err != nil {
			return nil, nil, fhirIssue("value", "Patient.birthDate", "Patient.birthDate must be a full date such as 1980-02-03")
		}
	}
	conv, apiConv, _, err := s.openConversation(ctx, c, req)
	return conv, apiConv, err
}

func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return typeErr.Field + " must be a " + typeErr.Type.Kind().String()
	}
	return "not valid JSON"
}

// fhirFields name, in FHIR terms, the REST fields that shared checks report.
var fhirFields = map[string]string{
	"patient.phone":       "Patient.telecom",
	"patient.birth_date":  "Patient.birthDate",
	"patient.name":        "Patient.name",
	"patient.external_id": "Patient.identifier",
	"clinic_number":       "Communication.sender",
	"text":                "Communication.payload",
	"message":             "Communication.payload",
}

// outcomeOf is an error as a FHIR OperationOutcome.
func outcomeOf(e *Error) map[string]any {
	code := e.Code
	switch e.Code {
	case "missing_token", "invalid_token":
		code = "login"
	case "insufficient_scope":
		code = "forbidden"
	case "rate_limited":
		code = "throttled"
	case "not_found":
		code = "not-found"
	case "malformed_json", "unreadable_body":
		code = "structure"
	case "invalid_field", "invalid_idempotency_key":
		code = "invalid"
	case "too_large", "too_long":
		code = "too-long"
	case "opted_out", "number_not_linked", "idempotency_key_reused":
		code = "business-rule"
	case "request_in_progress", "idempotency_answer_unavailable":
		code = "conflict"
	case "send_failed":
		code = "transient"
	case "internal_error":
		code = "exception"
	}
	issue := map[string]any{"severity": "error", "code": code, "diagnostics": e.Message}
	if e.Field != "" {
		field := e.Field
		if fhirField, ok := fhirFields[field]; ok {
			field = fhirField
		}
		issue["expression"] = []string{field}
	}
	return map[string]any{"resourceType": "OperationOutcome", "issue": []any{issue}}
}

func writeOutcome(w http.ResponseWriter, e *Error) {
	writeRaw(w, e.Status, encodeError(e, true), true)
}
