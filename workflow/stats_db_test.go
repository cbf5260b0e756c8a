package workflow

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"

	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/testenv"
)

// The stats read one clinic number's waits (or every number's) from the database, on both.
func TestStatsReadTheClinicNumbersWaitsAndBacklog(t *testing.T) {
	for _, kind := range testenv.DatabaseKinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			spec := testenv.NewDatabase(t, kind)
			raw, err := dbutil.NewWithDialect(spec.URI, spec.Type)
			require.NoError(t, err)
			t.Cleanup(func() { _ = raw.Close() })
			db := database.New(raw, zerolog.Nop())
			require.NoError(t, db.Upgrade(ctx))

			// Wednesday 4 March 2026, 15:00 UTC.
			now := time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC)
			wait := func(login, patient string, from, answered time.Time) {
				conv, err := db.Conversation.GetOrCreate(ctx, &database.Conversation{LoginID: login, PortalID: patient[1:],
					ClinicPhone: "+" + login, PatientPhone: patient})
				require.NoError(t, err)
				require.NoError(t, db.Conversation.MarkWaiting(ctx, conv.LoginID, conv.PortalID, from))
				if !answered.IsZero() {
					_, err = db.ResponseTimes().EndWait(ctx, &database.ResponseTime{LoginID: conv.LoginID, PortalID: conv.PortalID,
						WaitedFrom: from, AnsweredAt: answered, AnsweredBy: "@nurse:clinic.example"})
					require.NoError(t, err)
				}
			}
			wait("15550001111", "+15551230001", now.Add(-2*time.Hour), now.Add(-2*time.Hour+10*time.Minute))
			wait("15550001111", "+15551230002", now.Add(-26*time.Hour), now.Add(-25*time.Hour))
			wait("15550001111", "+15551230003", now.Add(-45*time.Minute), time.Time{})
			wait("15550002222", "+15551230004", now.Add(-3*time.Hour), now.Add(-3*time.Hour+4*time.Minute))

			report, err := Stats(ctx, db.ResponseTimes(), "15550001111", "(555) 000-1111", now, time.UTC)
			require.NoError(t, err)
			assert.Equal(t, "Response times for (555) 000-1111 (clinic time, UTC):\n\n"+
				"* Today: 1 answered, median 10m, 90th percentile 10m\n"+
				"* This week (since Mon 2 Mar): 2 answered, median 10m, 90th percentile 1h 0m\n"+
				"* Waiting now: 1 conversation, for 45m\n", report)

			report, err = Stats(ctx, db.ResponseTimes(), "", "all clinic numbers", now, time.UTC)
			require.NoError(t, err)
			assert.Contains(t, report, "* Today: 2 answered, median 4m, 90th percentile 10m\n")
		})
	}
}

func TestTheInboxNoticeListsEachConversationWithItsRoom(t *testing.T) {
	text, rich := FormatInbox(52, []InboxLine{
		{Parts: []string{"🚨 urgent", "Maria <Lopez>", "unassigned", "waiting 25m"}, Link: "https://matrix.to/#/!a:clinic.example"},
		{Parts: []string{"(555) 123-4567", "assigned to Kim", "not waiting"}},
	})
	assert.Equal(t, "Open conversations (52):\n"+
		"1. 🚨 urgent · Maria <Lopez> · unassigned · waiting 25m · https://matrix.to/#/!a:clinic.example\n"+
		"2. (555) 123-4567 · assigned to Kim · not waiting\n"+
		"+50 more", text)
	assert.Equal(t, "<p>Open conversations (52):</p><ol>"+
		`<li>🚨 urgent · Maria &lt;Lopez&gt; · unassigned · waiting 25m · <a href="https://matrix.to/#/!a:clinic.example">open</a></li>`+
		"<li>(555) 123-4567 · assigned to Kim · not waiting</li></ol><p>+50 more</p>", rich)
}
