// Package admin holds carebridge's own subcommands (audit, keys, api-token, web): what an
// operator runs beside the bridge, on its config and database. cmd/carebridge calls Run
// before mxmain's flags; commands below is the one list of them.
package admin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// runFunc runs a subcommand (or a verb of one) with the arguments after its name and
// returns the process's exit code.
type runFunc = func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// command is one subcommand: usage shows its verbs and flags, summary what it is for.
type command struct {
	name, usage, summary string
	run                  runFunc
}

// commands lists carebridge's subcommands, in the order help prints them.
func commands() []command {
	return []command{
		{"audit", "verify|head|export -c config.yaml",
			"verify the audit log's hash chain, print its head, or export it", runAudit},
		{"keys", "status|rotate -c config.yaml",
			"show what each secure chat key seals, or re-seal everything with the current key", runKeys},
		{"api-token", "--name NAME [--scopes …]",
			"make a bearer token for an integration of the API, and the config lines with its SHA-256", runAPIToken},
		{"web", "-c config.yaml [--listen host:port]",
			"serve the secure chat's patient pages alone, as a replica beside the bridge (PostgreSQL)", runWeb},
		{"help", "", "list these subcommands", runHelp},
	}
}

// Run runs the carebridge subcommand named by args[0]; handled is false when args do not
// start with one (mxmain's flags then apply, including plain `carebridge -c …`).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int, handled bool) {
	if len(args) == 0 {
		return 0, false
	}
	list := commands()
	i := slices.IndexFunc(list, func(c command) bool { return c.name == args[0] })
	if i < 0 {
		return 0, false
	}
	return list[i].run(ctx, args[1:], stdout, stderr), true
}

func runHelp(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, "carebridge subcommands (`carebridge NAME -h` for more; -c/--config defaults to config.yaml):")
	for _, c := range commands() {
		fmt.Fprintln(stdout, strings.TrimRight(fmt.Sprintf("  carebridge %-10s %s", c.name, c.usage), " "))
		fmt.Fprintf(stdout, "      %s\n", c.summary)
	}
	fmt.Fprintln(stdout, "Anything else is the bridge itself: `carebridge -h` lists its flags.")
	return 0
}

// runVerbs runs the verb args[0] of the subcommand group, or prints usage.
func runVerbs(ctx context.Context, group string, verbs map[string]runFunc, usage func(io.Writer),
	args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if run, ok := verbs[args[0]]; ok {
		return run(ctx, args[1:], stdout, stderr)
	}
	switch args[0] {
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "carebridge %s: unknown subcommand %q\n", group, args[0])
	usage(stderr)
	return exitUsage
}
