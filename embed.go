// Package carebridge holds the files at the repository root that the binary embeds.
package carebridge

import _ "embed"

// ExampleConfig is the commented example of the network section of the config.
//
//go:embed example-config.yaml
var ExampleConfig string
