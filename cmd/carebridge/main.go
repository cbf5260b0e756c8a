// Command carebridge is the carebridge bridge: mxmain's standard CLI (-c, -r, -g, -e, -n,
// --ignore-unsupported-server) around carebridge's network connector, plus carebridge's
// own subcommands (`carebridge help` lists them: audit, keys).
package main

import (
	"context"
	"fmt"
	"os"

	"maunium.net/go/mautrix/bridgev2/matrix/mxmain"

	"github.com/carebridge/carebridge/bridge"
	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/internal/logmask"
	"github.com/carebridge/carebridge/internal/version"
)

func main() {
	if code, ok := runTool(context.Background(), os.Args[1:], os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	// Phone numbers are reduced to their last four digits in every log writer.
	logmask.Install()
	clock, err := bridge.ProcessClock()
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
		Name:        version.Name,
		Description: "A Matrix-SMS bridge for clinics, with a secure patient web chat",
		URL:         version.URL,
		Version:     version.Base,
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
	}
	m.InitVersion(version.Tag, version.Commit, version.BuildTime)
	m.Run()
}
