// Package carebridge holds the files at the repository root that the binary embeds.
package carebridge

import _ "embed"

// ExampleConfig is the commented example of the network section of the config.
//
//go:embed example-config.yaml
var ExampleConfig string

// OpenAPI is the integration API's OpenAPI 3 document (docs/openapi.json).
//
//go:embed docs/openapi.json
var OpenAPI []byte
