package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// writeDendriteConfig writes matrix_key.pem and dendrite.yaml into d.dir: the CI
// defaults of generate-config (SQLite, bcrypt cost 4) made quiet, closed and local.
func (d *Dendrite) writeDendriteConfig(registrationPaths []string) error {
	keys := exec.Command(filepath.Join(d.binDir, "generate-keys"), "--private-key", "matrix_key.pem")
	keys.Dir = d.dir
	if out, err := keys.CombinedOutput(); err != nil {
		return fmt.Errorf("generate-keys failed: %w: %s", err, out)
	}

	dataDir := filepath.Join(d.dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("failed to create data folder: %w", err)
	}
	gen := exec.Command(filepath.Join(d.binDir, "generate-config"), "-ci", "-dir", dataDir, "-server", d.ServerName())
	gen.Dir = d.dir
	raw, err := gen.Output()
	if err != nil {
		return fmt.Errorf("generate-config failed: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("failed to parse generated config: %w", err)
	}

	regs := make([]any, 0, len(registrationPaths))
	for _, p := range registrationPaths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("bad registration path %q: %w", p, err)
		}
		regs = append(regs, abs)
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	d.sharedSecret = hex.EncodeToString(secret)

	settings := []struct {
		path  []string
		value any
	}{
		{[]string{"global", "private_key"}, "matrix_key.pem"},
		{[]string{"global", "disable_federation"}, true},
		{[]string{"global", "presence", "enable_inbound"}, false},
		{[]string{"global", "presence", "enable_outbound"}, false},
		{[]string{"global", "report_stats", "enabled"}, false},
		{[]string{"global", "jetstream", "storage_path"}, filepath.Join(dataDir, "jetstream")},
		{[]string{"global", "jetstream", "in_memory"}, true},
		{[]string{"app_service_api", "config_files"}, regs},
		{[]string{"client_api", "registration_disabled"}, true},
		{[]string{"client_api", "registration_shared_secret"}, d.sharedSecret},
		// Dendrite's default rate limits make a test that sends a few messages in a row
		// fail with M_LIMIT_EXCEEDED.
		{[]string{"client_api", "rate_limiting", "enabled"}, false},
		{[]string{"media_api", "base_path"}, filepath.Join(dataDir, "media")},
		{[]string{"sync_api", "search", "enabled"}, false},
		{[]string{"sync_api", "search", "index_path"}, filepath.Join(dataDir, "searchindex")},
		{[]string{"mscs", "mscs"}, []any{}},
		{[]string{"logging"}, []any{map[string]any{
			"type":   "file",
			"level":  "info",
			"params": map[string]any{"path": filepath.Join(d.dir, "log")},
		}}},
	}
	for _, s := range settings {
		if err := setYAMLPath(cfg, s.path, s.value); err != nil {
			return err
		}
	}

	out, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("failed to encode dendrite config: %w", err)
	}
	if err := os.WriteFile(d.ConfigPath(), out, 0o600); err != nil {
		return fmt.Errorf("failed to write dendrite config: %w", err)
	}
	return nil
}

// setYAMLPath sets cfg[path[0]][path[1]]...=value, creating missing maps.
func setYAMLPath(cfg map[string]any, path []string, value any) error {
	m := cfg
	for i, key := range path[:len(path)-1] {
		next, ok := m[key]
		if !ok || next == nil {
			created := map[string]any{}
			m[key] = created
			m = created
			continue
		}
		nm, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("dendrite config: %v is a %T, not a map", path[:i+1], next)
		}
		m = nm
	}
	m[path[len(path)-1]] = value
	return nil
}
