package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The check finds what it should: a page with an unlabelled image and low-contrast text.
func TestAxeFindsViolations(t *testing.T) {
	src := AxeSource(t)
	ctx := NewBrowser(t, true)
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(tctx, chromedp.Navigate(`data:text/html,<!doctype html><html lang="en"><title>x</title><main><h1>x</h1>`+
		`<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><p style="color:%23aaa;background:%23fff">faint</p></main></html>`)))
	violations, err := AxeViolations(tctx, src)
	require.NoError(t, err)
	joined := strings.Join(violations, "\n")
	assert.Contains(t, joined, "image-alt")
	assert.Contains(t, joined, "color-contrast")
}
