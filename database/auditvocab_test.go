package database_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

// TestAuditActorForms: each constructor stores the form rows already carry, and reads
// back to the same actor.
func TestAuditActorForms(t *testing.T) {
	for _, tc := range []struct {
		actor  database.AuditActor
		stored string
	}{
		{database.StaffActor("@nurse.kim:clinic.example"), "@nurse.kim:clinic.example"},
		{database.IntegrationActor("ehr"), "integration:ehr"},
		{database.SystemActor, "system"},
		{database.CLIActor("it-admin"), "system:cli:it-admin"},
		{database.PatientActor, "patient"},
		{database.PatientSMSActor, "patient:sms"},
		{database.PatientLinkActor, "patient:link"},
		{database.PatientSessionActor("3f9a0c21be77d5e1aa00"), "patient:3f9a0c21be77"},
		{database.UnauthenticatedActor, "unauthenticated"},
	} {
		t.Run(tc.stored, func(t *testing.T) {
			assert.Equal(t, tc.stored, tc.actor.String())
			assert.Equal(t, tc.actor, database.ParseAuditActor(tc.stored))
			encoded, err := json.Marshal(tc.actor)
			require.NoError(t, err)
			assert.JSONEq(t, `"`+tc.stored+`"`, string(encoded), "exports show the stored form")
		})
	}
	assert.Equal(t, "ehr", database.IntegrationActor("ehr").Name, "the room names the integration without parsing")
	assert.Equal(t, "@nurse.kim:clinic.example", database.StaffActor("@nurse.kim:clinic.example").MXID().String())
	assert.Empty(t, database.IntegrationActor("ehr").MXID())
	// Strings of no known form are kept as they are.
	for _, s := range []string{"", "integration:", "system:", "patient:", "browser", "unauthenticated:x"} {
		a := database.ParseAuditActor(s)
		assert.Equal(t, database.ActorOther, a.Kind, s)
		assert.Equal(t, s, a.String())
	}
}

// TestAuditVocabularyIsStored: the constants are the strings stored before they were
// typed, so old rows, their hashes and `audit export` stay the same.
func TestAuditVocabularyIsStored(t *testing.T) {
	for stored, ev := range map[string]database.AuditEvent{
		"mode switched": database.EventModeSwitched, "link issued": database.EventLinkIssued,
		"message stored for secure chat": database.EventSecureMessageStored, "code sent": database.EventCodeSent,
		"api call": database.EventAPICall, "api calls refused": database.EventAPICallsRefused,
		"data purged": database.EventDataPurged, "keys rotated": database.EventKeysRotated,
		"audit exported": database.EventAuditExported, "after-hours reply sent": database.EventAfterHoursReplySent,
		"follow-up cancelled": database.EventFollowUpCancelled, "login added": database.EventLoginAdded,
	} {
		assert.Equal(t, stored, string(ev))
	}
	for stored, o := range map[string]database.AuditOutcome{
		"ok": database.OutcomeOK, "refused": database.OutcomeRefused, "opened after expiry": database.OutcomeOpenedExpired,
		"rate limited": database.OutcomeRateLimited, "signed out": database.OutcomeSignedOut,
	} {
		assert.Equal(t, stored, string(o))
	}
}

// TestAuditTypedRoundTrip: typed entries stored and read back on both databases keep
// their actor, event and outcome, and the chain verifies.
func TestAuditTypedRoundTrip(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		want := []*database.AuditEntry{
			{Actor: database.IntegrationActor("ehr"), LoginID: auditLogin, PortalID: auditPortal, Event: database.EventMessageSent,
				Outcome: database.OutcomeOK, Detail: "sms"},
			{Actor: database.PatientSessionActor("0123456789abcdef"), LoginID: auditLogin, PortalID: auditPortal,
				Event: database.EventSessionTimedOut, Outcome: database.OutcomeEnded, Detail: "idle"},
			{Actor: database.ParseAuditActor("patient:browser"), LoginID: auditLogin, PortalID: auditPortal,
				Event: database.EventCodeFailed, Outcome: database.OutcomeWrong},
		}
		for _, e := range want {
			require.NoError(t, db.Audit.Append(ctx, e))
		}
		var stored string
		require.NoError(t, db.QueryRow(ctx, "SELECT actor FROM audit_log WHERE id=$1", want[0].ID).Scan(&stored))
		assert.Equal(t, "integration:ehr", stored)
		for _, e := range want {
			got, err := db.Audit.Find(ctx, auditLogin, auditPortal, e.Event)
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, e.Actor, got[0].Actor)
			assert.Equal(t, e.Outcome, got[0].Outcome)
		}
		n, err := db.Audit.Verify(ctx)
		require.NoError(t, err)
		assert.Equal(t, 3, n)
	})
}

// FuzzParseAuditActor: every stored actor reads back to the same string (so rows keep
// their hashes), and an actor of a known kind is what its constructor makes.
func FuzzParseAuditActor(f *testing.F) {
	for _, seed := range []string{"@nurse.kim:clinic.example", "integration:ehr", "system", "system:cli:it-admin", "patient",
		"patient:sms", "patient:3f9a0c21be77", "unauthenticated", "", "integration:", "system:", "patient:link:x", "@"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a := database.ParseAuditActor(s)
		if a.String() != s {
			t.Fatalf("%q reads as %+v, which stores as %q", s, a, a.String())
		}
		if again := database.ParseAuditActor(a.String()); again != a {
			t.Fatalf("%q reads as %+v, then as %+v", s, a, again)
		}
		switch a.Kind {
		case database.ActorIntegration:
			if database.IntegrationActor(a.Name) != a || a.Name == "" {
				t.Fatalf("%q: integration %+v", s, a)
			}
		case database.ActorStaff:
			if database.StaffActor(a.MXID()) != a {
				t.Fatalf("%q: staff %+v", s, a)
			}
		}
	})
}
