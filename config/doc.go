// Package config owns the network section of carebridge's config: its structs, defaults,
// validation and the commented example (the repository's example-config.yaml, embedded).
// It also hardens the defaults of the bridgev2 part of the example config for clinics.
package config
