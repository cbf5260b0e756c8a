package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestExportProgressRewritesOneLineAtMostOncePerSecond(t *testing.T) {
	clock := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	var out strings.Builder
	p := newRowProgress(&out, "Exporting audit log", 5000, now)

	p.add(1000)
	assert.Empty(t, out.String(), "nothing before the first second")
	clock = clock.Add(1500 * time.Millisecond)
	p.add(200)
	p.add(1)
	assert.Equal(t, "\rExporting audit log: 1200 of 5000 rows (24%)", out.String(), "one line, rewritten in place")
	clock = clock.Add(time.Second)
	p.add(3000)
	p.add(799)
	p.finish()
	assert.Equal(t, "\rExporting audit log: 1200 of 5000 rows (24%)"+
		"\rExporting audit log: 4201 of 5000 rows (84%)"+
		"\rExporting audit log: 5000 of 5000 rows (100%)\n", out.String(), "finish shows the final count and ends the line")
}

func TestQuickExportWritesNoProgress(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) }
	var out strings.Builder
	p := newRowProgress(&out, "Exporting audit log", 3, now)
	p.add(3)
	p.finish()
	assert.Empty(t, out.String())
}

func TestProgressWithoutTotalCountsRows(t *testing.T) {
	clock := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var out strings.Builder
	p := newRowProgress(&out, "Exporting audit log", 0, func() time.Time { return clock })
	clock = clock.Add(2 * time.Second)
	p.add(7)
	assert.Equal(t, "\rExporting audit log: 7 rows", out.String())
}
