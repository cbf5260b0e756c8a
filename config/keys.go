package config

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	up "go.mau.fi/util/configupgrade"
	"gopkg.in/yaml.v3"
)

// The secure chat's keys form a ring: 256-bit keys by ID, one of them current. New data is
// sealed with the current key; the others still open what they sealed until
// `carebridge keys rotate` has re-sealed it. A key is written in the file (base64), made
// on first start ("generate"), or taken from the environment so it need not be in the file.

const (
	// KeyEnvPrefix starts the environment variable that supplies one key: the prefix, then
	// the key ID upper-cased with every character other than A-Z and 0-9 written as "_"
	// (k1 → CAREBRIDGE_SECURE_CHAT_KEY_K1, 2025-q3 → CAREBRIDGE_SECURE_CHAT_KEY_2025_Q3).
	// When set, it takes precedence over the file.
	KeyEnvPrefix = "CAREBRIDGE_SECURE_CHAT_KEY_"
	// EncryptionKeyEnv is the variable of the single key before key rotation existed; it
	// still supplies the key LegacyKeyID when that key's own variable is not set.
	EncryptionKeyEnv = "CAREBRIDGE_SECURE_CHAT_KEY"
	// LegacyKeyID names the single key of older configs: data sealed before key rotation
	// existed carries this ID.
	LegacyKeyID = "k1"
	// KeyGenerate in the file asks for a key to be made on first start.
	KeyGenerate = "generate"
	// KeyFromEnv in the file says the key must come from its environment variable.
	KeyFromEnv = "env"
	// KeyBytes is the length of a key: AES-256.
	KeyBytes = 32
)

// keyIDPattern keeps IDs short and printable: they are stored with every sealed row.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

var nonAlphanumeric = regexp.MustCompile(`[^A-Z0-9]`)

// KeyEnv is the environment variable that supplies the key with this ID.
func KeyEnv(id string) string {
	return KeyEnvPrefix + nonAlphanumeric.ReplaceAllString(strings.ToUpper(id), "_")
}

// KeyMaterial resolves the key ring: the ID of the current key and every key's 32 bytes,
// with environment variables applied. Its errors name the key and the fix, never a key.
func (c *SecureChatConfig) KeyMaterial() (current string, keys map[string][]byte, err error) {
	raw := make(map[string]string, len(c.Keys)+1)
	for id, value := range c.Keys {
		raw[id] = value
	}
	legacy := strings.TrimSpace(c.EncryptionKey)
	if legacy != "" {
		// A config that did not go through the Upgrader (or the example's k1 under it).
		if existing, ok := raw[LegacyKeyID]; !ok || strings.TrimSpace(existing) == KeyGenerate {
			raw[LegacyKeyID] = legacy
		} else if legacy != KeyGenerate && strings.TrimSpace(existing) != legacy {
			return "", nil, invalid("secure_chat.encryption_key", "is the single key of older versions and differs from "+
				"secure_chat.keys."+LegacyKeyID+": remove encryption_key, or move its value to keys."+LegacyKeyID+
				" if data was sealed with it")
		}
	}
	if len(raw) == 0 {
		return "", nil, invalid("secure_chat.keys", "is empty: write `"+LegacyKeyID+": generate` to have a key made on first start")
	}
	ids := make([]string, 0, len(raw))
	for id := range raw {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	envOwner := make(map[string]string, len(ids))
	for _, id := range ids {
		if !keyIDPattern.MatchString(id) {
			return "", nil, invalid("secure_chat.keys", fmt.Sprintf("has the ID %q: use 1 to 32 letters, digits, '.', '-' or '_', "+
				"starting with a letter or digit (e.g. k2 or 2025-q3)", id))
		}
		if other, ok := envOwner[KeyEnv(id)]; ok {
			return "", nil, invalid("secure_chat.keys", fmt.Sprintf("has the IDs %q and %q, which share the environment variable %s: "+
				"rename one of them", other, id, KeyEnv(id)))
		}
		envOwner[KeyEnv(id)] = id
	}
	keys = make(map[string][]byte, len(ids))
	seen := make(map[string]string, len(ids))
	for _, id := range ids {
		key, err := resolveKey(id, raw[id])
		if err != nil {
			return "", nil, err
		}
		if other, ok := seen[string(key)]; ok {
			return "", nil, invalid("secure_chat.keys."+id, fmt.Sprintf("is the same key as %s: give each ID a key of its own "+
				"(write generate, or use `openssl rand -base64 32`); re-sealing with the same key protects nothing", other))
		}
		seen[string(key)] = id
		keys[id] = key
	}
	current = strings.TrimSpace(c.CurrentKey)
	switch {
	case current == "" && len(ids) == 1:
		current = ids[0]
	case current == "":
		return "", nil, invalid("secure_chat.current_key", fmt.Sprintf("is empty: name the key new data is sealed with (one of %s)",
			strings.Join(ids, ", ")))
	case keys[current] == nil:
		return "", nil, invalid("secure_chat.current_key", fmt.Sprintf("is %q, which is not in secure_chat.keys (%s): "+
			"add it there or name one of those", current, strings.Join(ids, ", ")))
	}
	return current, keys, nil
}

// resolveKey reads one key from its environment variable or the file.
func resolveKey(id, value string) ([]byte, error) {
	where := "network.secure_chat.keys." + id
	value = strings.TrimSpace(value)
	if env := strings.TrimSpace(os.Getenv(KeyEnv(id))); env != "" {
		value, where = env, "the environment variable "+KeyEnv(id)
	} else if legacy := strings.TrimSpace(os.Getenv(EncryptionKeyEnv)); legacy != "" && id == LegacyKeyID {
		value, where = legacy, "the environment variable "+EncryptionKeyEnv
	} else if value == KeyGenerate {
		return nil, fmt.Errorf("%w: %s is still %q: start the bridge once to have a key made and written there, write one "+
			"(32 random bytes in base64, e.g. from `openssl rand -base64 32`), or set %s", ErrInvalidConfig, where, KeyGenerate, KeyEnv(id))
	} else if value == KeyFromEnv {
		return nil, fmt.Errorf("%w: %s is %q but %s is not set: set it to the key (32 bytes in base64)",
			ErrInvalidConfig, where, KeyFromEnv, KeyEnv(id))
	}
	key, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not valid base64: write the key as 32 random bytes in base64 "+
			"(e.g. from `openssl rand -base64 32`), or generate", ErrInvalidConfig, where)
	} else if len(key) != KeyBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes: a key must be 32 bytes (256 bits) in base64 "+
			"(e.g. from `openssl rand -base64 32`), or generate", ErrInvalidConfig, where, len(key))
	}
	return key, nil
}

// newKey makes a key for a "generate" in the file.
func newKey() string {
	secret := make([]byte, KeyBytes)
	_, _ = rand.Read(secret)
	return base64.StdEncoding.EncodeToString(secret)
}

// upgradeKeys carries the key ring into the current example: an older config's single
// encryption_key becomes keys.k1 (data sealed before rotation existed says k1), and every
// "generate" becomes a new key.
func upgradeKeys(helper up.Helper) {
	legacy, hasLegacy := helper.Get(up.Str, "secure_chat", "encryption_key")
	if node := helper.GetNode("secure_chat", "keys"); node != nil && node.Kind == yaml.MappingNode {
		helper.Copy(up.Map, "secure_chat", "keys")
		helper.Copy(up.Str, "secure_chat", "current_key")
	} else if hasLegacy {
		helper.Set(up.Str, LegacyKeyID, "secure_chat", "current_key")
	}
	keys := helper.GetBaseNode("secure_chat", "keys")
	if hasLegacy && strings.TrimSpace(legacy) != "" {
		if k1 := mapValue(keys.Node, LegacyKeyID); k1 == nil {
			keyNode, valueNode := &yaml.Node{}, &yaml.Node{}
			keyNode.SetString(LegacyKeyID)
			valueNode.SetString(legacy)
			keys.Content = append(keys.Content, keyNode, valueNode)
		} else if k1.Value == KeyGenerate {
			k1.SetString(legacy)
		}
	}
	for i := 1; i < len(keys.Content); i += 2 {
		if value := keys.Content[i]; value.Kind == yaml.ScalarNode && strings.TrimSpace(value.Value) == KeyGenerate {
			value.SetString(newKey())
		}
	}
}

// mapValue is the value node of key in a YAML mapping node, or nil.
func mapValue(mapping *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(mapping.Content); i += 2 {
		if mapping.Content[i].Value == key {
			return mapping.Content[i+1]
		}
	}
	return nil
}
