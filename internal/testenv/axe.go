package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// DepAxe names axe-core (npm), the accessibility engine Lighthouse also runs, for RequireDep.
const DepAxe = "axe-core"

// AxeVersion is the axe-core that scripts/test-deps.sh installs.
const AxeVersion = "4.14.1"

func init() {
	installHints[DepAxe] = "make deps (npm install -E axe-core@" + AxeVersion + " into ~/.cache/carebridge/node), " +
		"or point CAREBRIDGE_AXE at axe.min.js"
}

// AxeSource returns axe-core's script: $CAREBRIDGE_AXE, else the one make deps installed.
func AxeSource(t testing.TB) string {
	t.Helper()
	path := os.Getenv("CAREBRIDGE_AXE")
	if path == "" {
		cache := os.Getenv("CAREBRIDGE_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "carebridge")
		}
		path = filepath.Join(cache, "node", "node_modules", "axe-core", "axe.min.js")
	}
	src, err := os.ReadFile(path)
	RequireDep(t, DepAxe, err)
	return string(src)
}

// AxeRules are the rules the pages are held to: WCAG 2.0, 2.1 and 2.2 A and AA, and
// axe's best practices.
var AxeRules = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"}

// AxeViolations runs axe-core (src, from AxeSource) on the browser's page and returns one
// line per violation and element: the rule, what it asks and where.
func AxeViolations(ctx context.Context, src string) ([]string, error) {
	// DevTools evaluation is not bound by the page's Content-Security-Policy.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { if (!window.axe) { `+src+"\n"+` } return !!window.axe; })()`)); err != nil {
		return nil, fmt.Errorf("failed to load axe-core into the page: %w", err)
	}
	tags, _ := json.Marshal(AxeRules)
	return chromedp.Run(ctx, chromedp.Evaluate[[]string](`axe.run(document, {runOnly: {type: 'tag', values: `+string(tags)+`}, resultTypes: ['violations']})
		.then(r => r.violations.flatMap(v => v.nodes.map(n => v.id + ' (' + v.help + '): ' + n.target.join(' ') + ' — ' + n.failureSummary.replace(/\s+/g, ' '))))`,
		chromedp.EvalAwaitPromise))
}
