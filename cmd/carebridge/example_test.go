package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestExampleRequest(t *testing.T) {
	tests := []struct {
		args     []string
		wantPath string
		wantOK   bool
	}{
		{[]string{"-e"}, "config.yaml", true},
		{[]string{"-e", "-c", "-"}, "-", true},
		{[]string{"-c", "/etc/carebridge/config.yaml", "--generate-example-config"}, "/etc/carebridge/config.yaml", true},
		{[]string{"--config=x.yaml", "-en"}, "x.yaml", true},
		{[]string{"-c", "config.yaml"}, "config.yaml", false},
		{[]string{"-g", "-c", "e.yaml"}, "e.yaml", false},
		{[]string{"--ignore-unsupported-server"}, "config.yaml", false},
		{[]string{"--", "-e"}, "config.yaml", false},
	}
	for _, tt := range tests {
		path, ok := exampleRequest(tt.args)
		assert.Equal(t, tt.wantOK, ok, tt.args)
		if ok {
			assert.Equal(t, tt.wantPath, path, tt.args)
		}
	}
}
