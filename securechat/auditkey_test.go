package securechat

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAuditMACByKey: the audit MAC depends on the key named, every key of the ring
// makes its own, an unknown key makes none, and no audit key equals a token hash.
func TestAuditMACByKey(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{0x11}, 32), bytes.Repeat([]byte{0x22}, 32)
	ring, err := NewKeyringOf("k2", map[string][]byte{"k1": k1, "k2": k2})
	require.NoError(t, err)
	row := []byte(`["carebridge audit v10","00","mode switched"]`)
	mac1, ok := ring.AuditMAC("k1", row)
	require.True(t, ok)
	mac2, ok := ring.AuditMAC("k2", row)
	require.True(t, ok)
	assert.Len(t, mac1, 32)
	assert.NotEqual(t, mac1, mac2)
	_, ok = ring.AuditMAC("k9", row)
	assert.False(t, ok)

	// The same key in a ring of its own (after k2 is gone) makes the same MAC.
	alone, err := NewKeyring("k1", k1)
	require.NoError(t, err)
	again, ok := alone.AuditMAC("k1", row)
	require.True(t, ok)
	assert.Equal(t, mac1, again)
	assert.NotEqual(t, ring.keys["k1"].hashKey, ring.keys["k1"].auditKey)
}
