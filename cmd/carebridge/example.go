package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/matrix/mxmain"

	"github.com/carebridge/carebridge/config"
)

// mxmain's boolean short flags, which may be clustered with -e (e.g. -en).
const boolShortFlags = "eghnv"

// exampleRequest reports whether the arguments ask for the example config (-e,
// --generate-example-config) and where to write it (-c/--config, default config.yaml).
func exampleRequest(args []string) (path string, ok bool) {
	path = "config.yaml"
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return path, ok
		case arg == "--generate-example-config" || arg == "--generate-example-config=true":
			ok = true
		case arg == "-c" || arg == "--config":
			if i+1 < len(args) {
				path = args[i+1]
				i++
			}
		case strings.HasPrefix(arg, "--config="):
			path = strings.TrimPrefix(arg, "--config=")
		case strings.HasPrefix(arg, "-c="):
			path = strings.TrimPrefix(arg, "-c=")
		case len(arg) > 1 && arg[0] == '-' && arg[1] != '-' && strings.ContainsRune(arg, 'e') &&
			strings.Trim(arg[1:], boolShortFlags) == "":
			ok = true
		}
	}
	return path, ok
}

// writeExample writes carebridge's example config as mxmain's -e does, with carebridge's
// hardened defaults, and refuses to overwrite an existing file.
func writeExample(path string, name bridgev2.BridgeName, networkExample string) error {
	full, err := config.FullExample(mxmain.MatrixExampleConfigBase, networkExample, name)
	if err != nil {
		return err
	}
	if path == "-" || path == "/dev/stdout" {
		_, err = fmt.Print(full)
		return err
	}
	if _, err = os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s already exists, please remove it if you want to generate a new example", path)
	}
	if err = os.WriteFile(path, []byte(full), 0o600); err != nil {
		return err
	}
	fmt.Println("Wrote example config to", path)
	return nil
}
