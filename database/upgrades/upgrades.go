// Package upgrades holds carebridge's schema migrations, applied by dbutil on SQLite and
// PostgreSQL under carebridge's own version table.
package upgrades

import (
	"embed"

	"go.mau.fi/util/dbutil"
)

//go:embed *.sql
var rawUpgrades embed.FS

// Table is the ordered list of carebridge's schema upgrades.
var Table = dbutil.BuildUpgradeTable().WithFS(rawUpgrades).Finish()
