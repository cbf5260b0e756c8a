package integration

import (
	"encoding/json"
	"net/http"
	"time"

	"go.mau.fi/util/progver"

	"github.com/carebridge/carebridge/config"
)

// The FHIR endpoint's CapabilityStatement (GET /_carebridge/fhir/metadata), which FHIR
// clients ask for first. It describes what fhir.go serves and nothing more, so it
// changes only with the software: it is built once, and served without a token.

// fhirVersion is the FHIR release carebridge speaks: R4.
const fhirVersion = "4.0.1"

type capabilityStatement struct {
	ResourceType   string                   `json:"resourceType"`
	Name           string                   `json:"name"`
	Title          string                   `json:"title"`
	Status         string                   `json:"status"`
	Date           string                   `json:"date"`
	Publisher      string                   `json:"publisher"`
	Description    string                   `json:"description"`
	Kind           string                   `json:"kind"`
	Software       capabilitySoftware       `json:"software"`
	Implementation capabilityImplementation `json:"implementation"`
	FHIRVersion    string                   `json:"fhirVersion"`
	Format         []string                 `json:"format"`
	Rest           []capabilityRest         `json:"rest"`
}

type capabilitySoftware struct {
	Name        string `json:"name"`
	Version     string `json:"version,omitempty"`
	ReleaseDate string `json:"releaseDate,omitempty"`
}

type capabilityImplementation struct {
	Description string `json:"description"`
}

type capabilityRest struct {
	Mode          string               `json:"mode"`
	Documentation string               `json:"documentation"`
	Security      capabilitySecurity   `json:"security"`
	Resource      []capabilityResource `json:"resource"`
}

type capabilitySecurity struct {
	CORS        bool          `json:"cors"`
	Service     []fhirConcept `json:"service"`
	Description string        `json:"description"`
}

type fhirConcept struct {
	Text string `json:"text"`
}

type capabilityResource struct {
	Type              string                  `json:"type"`
	Documentation     string                  `json:"documentation"`
	Interaction       []capabilityInteraction `json:"interaction"`
	Versioning        string                  `json:"versioning"`
	ReadHistory       bool                    `json:"readHistory"`
	UpdateCreate      bool                    `json:"updateCreate"`
	ConditionalCreate bool                    `json:"conditionalCreate"`
	ConditionalRead   string                  `json:"conditionalRead"`
	ConditionalUpdate bool                    `json:"conditionalUpdate"`
	ConditionalDelete string                  `json:"conditionalDelete"`
	// SearchParam is empty: carebridge answers no FHIR search.
	SearchParam []capabilitySearchParam `json:"searchParam,omitempty"`
}

type capabilityInteraction struct {
	Code          string `json:"code"`
	Documentation string `json:"documentation"`
}

type capabilitySearchParam struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// newCapabilityStatement describes the FHIR endpoint of this build (v, as --version
// prints it). Its date is the build's time (a release's commit time), or started when
// the build does not say.
func newCapabilityStatement(v progver.ProgramVersion, started time.Time) capabilityStatement {
	date := started
	if !v.BuildTime.IsZero() {
		date = v.BuildTime
	}
	releaseDate := ""
	if v.IsRelease {
		releaseDate = v.BuildTime.UTC().Format(time.RFC3339)
	}
	return capabilityStatement{
		ResourceType: "CapabilityStatement",
		Name:         "CarebridgeFHIR",
		Title:        "carebridge FHIR endpoint",
		Status:       "active",
		Date:         date.UTC().Format(time.RFC3339),
		Publisher:    "carebridge",
		Description: "carebridge sends an EHR's messages to patients by SMS or through its secure web chat. " +
			"A Communication created here becomes a message to the recipient Patient; reading it back tells whether the patient has read it.",
		Kind:     "instance",
		Software: capabilitySoftware{Name: "carebridge", Version: v.FormattedVersion, ReleaseDate: releaseDate},
		Implementation: capabilityImplementation{
			Description: "carebridge, a Matrix bridge for clinics: patient messaging by SMS and secure web chat",
		},
		FHIRVersion: fhirVersion,
		Format:      []string{"json"},
		Rest: []capabilityRest{{
			Mode:          "server",
			Documentation: "JSON only (application/fhir+json). Invalid resources are answered with an OperationOutcome saying what is wrong and where.",
			Security: capabilitySecurity{
				CORS:    false,
				Service: []fhirConcept{{Text: "Bearer token"}},
				Description: "Each integration sends its own token as `Authorization: Bearer <token>` " +
					"(made by `carebridge api-token`; the bridge keeps only its SHA-256). " +
					"create needs the scope `" + config.ScopeMessagesWrite + "`, read `" + config.ScopeConversationsRead + "`. " +
					"This statement needs no token.",
			},
			Resource: []capabilityResource{{
				Type: "Communication",
				Documentation: "The recipient is a Patient: contained, with a telecom of system sms or phone, " +
					"or Patient/<id> for a patient carebridge knows by that external id. " +
					"The text is payload.contentString; status preparation or in-progress.",
				Interaction: []capabilityInteraction{
					{Code: "create", Documentation: "Sends the message at once. Honours Idempotency-Key; answers 201 with Location."},
					{Code: "read", Documentation: "The Communication with its state: in-progress, then completed (with received) once the patient has read it. Only the integration's own."},
				},
				Versioning:        "no-version",
				ConditionalRead:   "not-supported",
				ConditionalDelete: "not-supported",
			}},
		}},
	}
}

// serveMetadata answers the CapabilityStatement; it needs no token.
func (s *Server) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.metadata)
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // fixed types of strings and bools
	}
	return data
}
