package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/carebridge/carebridge/config"
)

// `carebridge api-token --name ehr` makes a bearer token for an integration and prints it
// once, with the config lines that hold only its SHA-256.

// newAPIToken is 256 random bits, with a prefix that says what it is (secret scanners).
func newAPIToken() (token, sha string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = "cbt_" + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(sum[:])
}

func runAPIToken(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("carebridge api-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the integration's name, e.g. ehr (lower-case letters, digits, - and _)")
	scopes := fs.String("scopes", strings.Join(config.Scopes, ","), "comma-separated scopes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *name == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: carebridge api-token --name ehr [--scopes conversations:write,messages:write,conversations:read]")
		return 2
	}
	var list []string
	for _, s := range strings.Split(*scopes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		} else if !slices.Contains(config.Scopes, s) {
			fmt.Fprintf(stderr, "unknown scope %q: the scopes are %s\n", s, strings.Join(config.Scopes, ", "))
			return 2
		}
		list = append(list, s)
	}
	ic := config.IntegrationConfig{Name: *name, Scopes: list}
	token, sha := newAPIToken()
	ic.TokenSHA256 = sha
	if err := (&config.Config{Integrations: []config.IntegrationConfig{ic}}).ValidateIntegrations(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	fmt.Fprintf(stdout, `Bearer token for integration %s (shown once; carebridge keeps only its SHA-256):

    %s

Add to the network section of the config, then restart the bridge:

integrations:
    - name: %s
      token_sha256: %s
      scopes: [%s]
`, *name, token, *name, sha, strings.Join(list, ", "))
	return 0
}
