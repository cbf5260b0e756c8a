package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/bridgev2/matrix/mxmain"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/logmask"
	"github.com/carebridge/carebridge/securechat"
)

// toolEnv is what a subcommand works with: the bridge's config and its database,
// upgraded to the schema this binary knows (the same as the bridge's own start does).
type toolEnv struct {
	Bridge  *bridgeconfig.Config
	Network config.Config
	DB      *database.Database
	// Keys is the secure chat key ring, which also keys the audit log's rows.
	Keys *securechat.Keyring
	Log  zerolog.Logger
}

// Close closes the database.
func (e *toolEnv) Close() {
	if e.DB != nil {
		_ = e.DB.Close()
	}
}

// toolFlags is a subcommand's flag set with the config flag every subcommand takes.
func toolFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("carebridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.yaml", "the bridge's config file")
	fs.StringVar(path, "c", "config.yaml", "the bridge's config file (short for --config)")
	return fs, path
}

// openTool reads the config (without rewriting it) and opens the database.
func openTool(ctx context.Context, path string, stderr io.Writer) (*toolEnv, error) {
	env, err := readToolConfig(path)
	if err != nil {
		return nil, err
	}
	env.Log = zerolog.New(zerolog.ConsoleWriter{Out: logmask.Wrap(stderr), NoColor: true}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	if err = env.openDB(ctx); err != nil {
		return nil, err
	}
	return env, nil
}

// readToolConfig reads the config (without rewriting it).
func readToolConfig(path string) (*toolEnv, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	var cfg bridgeconfig.Config
	if err = yaml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("failed to parse config %s: %w", path, err)
	}
	env := &toolEnv{Bridge: &cfg}
	// The example's values stand for keys an older config file does not have yet.
	if err = yaml.Unmarshal([]byte(config.ExampleConfig), &env.Network); err != nil {
		return nil, fmt.Errorf("failed to parse the built-in example config: %w", err)
	}
	if err = cfg.Network.Decode(&env.Network); err != nil {
		return nil, fmt.Errorf("failed to parse the network section of %s: %w", path, err)
	}
	if cfg.EnvConfigPrefix != "" {
		if err = mxmain.UpdateConfigFromEnv(&cfg, &env.Network, cfg.EnvConfigPrefix); err != nil {
			return nil, fmt.Errorf("failed to read config from the environment: %w", err)
		}
	}
	return env, nil
}

// openDB opens the config's database (logging to env.Log), upgraded to this binary's schema.
func (env *toolEnv) openDB(ctx context.Context) error {
	raw, err := dbutil.NewFromConfig("carebridge", env.Bridge.Database, dbutil.ZeroLogger(env.Log))
	if err != nil {
		return fmt.Errorf("failed to open the database: %w", err)
	}
	if env.Keys, err = securechat.KeyringFromConfig(&env.Network.SecureChat); err != nil {
		_ = raw.Close()
		return err
	}
	env.DB = database.New(raw, env.Log)
	// What a subcommand audits is keyed like the bridge's own rows, and verified with the same ring.
	env.DB.Audit.RequireKeys()
	env.DB.Audit.SetKeys(env.Keys)
	if err = env.DB.Upgrade(ctx); err != nil {
		_ = raw.Close()
		return fmt.Errorf("failed to bring the database schema up to date: %w", err)
	}
	return nil
}

// parseToolArgs parses a subcommand's flags (no positional arguments); ok is false with the exit code to return.
func parseToolArgs(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	case err != nil:
		return exitUsage, false // the flag package has printed why
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

// cliUserName names who ran a subcommand, for the audit log.
func cliUserName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return "unknown"
}
