package testenv

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSplitKind(t *testing.T) {
	for kind, want := range map[string][2]string{
		"sqlite":           {HomeserverDendrite, "sqlite"},
		"postgres":         {HomeserverDendrite, "postgres"},
		"synapse/sqlite":   {HomeserverSynapse, "sqlite"},
		"synapse/postgres": {HomeserverSynapse, "postgres"},
		"dendrite/sqlite":  {HomeserverDendrite, "sqlite"},
		"synapse":          {HomeserverSynapse, "sqlite"},
		"dendrite":         {HomeserverDendrite, "sqlite"},
	} {
		hs, db := SplitKind(kind)
		assert.Equal(t, want, [2]string{hs, db}, kind)
	}
}
