// Command carebridge is the carebridge bridge: mxmain's standard CLI (-c, -r, -g, -e, -n,
// --ignore-unsupported-server) around carebridge's network connector, plus carebridge's
// own subcommands (internal/admin; `carebridge help` lists them).
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/rs/zerolog"

	"go.mau.fi/util/progver"
	"maunium.net/go/mautrix/bridgev2/matrix/mxmain"

	"github.com/carebridge/carebridge/bridge"
	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/internal/admin"
	"github.com/carebridge/carebridge/internal/logmask"
	"github.com/carebridge/carebridge/workflow"
)

// Version is the latest release: a release commit sets it to the tag it gets (see the
// README, "Releases"); any other build shows as Version+dev.<commit>.
const Version = "0.1.0"

// Set at build time by scripts/version.sh (go build -ldflags "-X main.Tag=…"), as
// mxmain.InitVersion expects: Tag only on a clean tagged commit.
var (
	Tag       = "unknown"
	Commit    = "unknown"
	BuildTime = "unknown"
)

func main() {
	if code, ok := admin.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	// Phone numbers are reduced to their last four digits in every log writer.
	logmask.Install()
	clock, err := workflow.ProcessClock()
	if err != nil {
		fmt.Fprintln(os.Stderr, "carebridge refuses to start:", err)
		os.Exit(13)
	}
	connector := &bridge.Connector{Clock: clock, NewSimulator: newSimulator}
	if path, ok := exampleRequest(os.Args[1:]); ok {
		if err := writeExample(path, connector.GetName(), config.ExampleConfig); err != nil {
			fmt.Fprintln(os.Stderr, "Failed to write example config:", err)
			os.Exit(1)
		}
		return
	}
	m := mxmain.BridgeMain{
		Name:        "carebridge",
		Description: "A Matrix-SMS bridge for clinics, with a secure patient web chat",
		URL:         "https://github.com/carebridge/carebridge",
		Version:     Version,
		Connector:   connector,
	}
	m.PostInit = func() {
		err := bridge.CheckEncryptionBuilt(m.Config, m.Matrix)
		if err == nil {
			err = bridge.CheckSafeToStart(m.Config, &connector.Config, m.Log)
		}
		if err != nil {
			m.Log.Error().Err(err).Msg("Refusing to start")
			fmt.Fprintln(os.Stderr, "carebridge refuses to start:", err)
			os.Exit(13)
		}
		// On PostgreSQL one process is active; others wait here as standbys.
		addr := net.JoinHostPort(m.Config.AppService.Hostname, strconv.Itoa(int(m.Config.AppService.Port)))
		err = connector.WaitForLease(context.Background(), addr, func(err error) {
			m.Log.WithLevel(zerolog.FatalLevel).Err(err).Msg("Exiting: the active lease is lost")
			os.Exit(15)
		})
		if err != nil {
			m.Log.WithLevel(zerolog.FatalLevel).Err(err).Msg("Failed to wait for the active lease")
			os.Exit(15)
		}
	}
	m.InitVersion(Tag, Commit, BuildTime)
	// The same version for the FHIR CapabilityStatement (mxmain keeps its own private).
	connector.Version = progver.ProgramVersion{Name: m.Name, URL: m.URL, BaseVersion: Version}.Init(Tag, Commit, BuildTime)
	m.Run()
}
