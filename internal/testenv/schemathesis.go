package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// DepSchemathesis fuzzes the integration API from its OpenAPI document.
const DepSchemathesis = "schemathesis (st, from PyPI)"

func init() {
	installHints[DepSchemathesis] = "run scripts/install-schemathesis.sh (python3 -m venv and PyPI; scripts/test-deps.sh does)"
}

// Schemathesis returns the path of the pinned schemathesis command, installed into the
// cache folder by scripts/install-schemathesis.sh on first use.
func Schemathesis() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "install-schemathesis.sh"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/install-schemathesis.sh: %w: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}
