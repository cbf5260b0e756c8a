package bridge

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/id"

	"github.com/carebridge/carebridge/appservice"
	"github.com/carebridge/carebridge/config"
)

// Every command is defined in commands.go and registered from its one list, once, and no
// two share a name or an alias.
func TestEveryCommandIsDefinedInCommandsGoAndListedOnce(t *testing.T) {
	list := commandList()
	names := map[string]bool{}
	for _, h := range list {
		all := []string{h.GetName()}
		if aliased, ok := h.(commands.AliasedCommandHandler); ok {
			all = append(all, aliased.GetAliases()...)
		}
		for _, name := range all {
			assert.False(t, names[name], "two commands are called %q", name)
			names[name] = true
		}
	}

	// The command variables (cmdX) of the package: all in commands.go, as many as listed.
	defined := map[string]string{}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		require.NoError(t, err)
		parsed, err := parser.ParseFile(fset, file, src, 0)
		require.NoError(t, err)
		for _, decl := range parsed.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.VAR {
				continue
			}
			for _, spec := range gen.Specs {
				for _, ident := range spec.(*ast.ValueSpec).Names {
					if strings.HasPrefix(ident.Name, "cmd") {
						defined[ident.Name] = file
					}
				}
			}
		}
	}
	for name, file := range defined {
		assert.Equal(t, "commands.go", file, "%s is a command defined outside commands.go", name)
	}
	assert.Len(t, list, len(defined), "every command variable is in commandList, once")
	seen := map[any]bool{}
	for _, h := range list {
		assert.False(t, seen[h], "%s is listed twice", h.GetName())
		seen[h] = true
	}
}

// The rule is workflow.InboxNumbers; the bridge says who is invited to every conversation.
func TestStaffInvitedToEveryConversationSeeEveryNumberInTheirInbox(t *testing.T) {
	c := &Connector{Staff: appservice.NewStaffPolicy([]string{"@desk:clinic.example"})}
	c.Config.Teams = []config.TeamConfig{
		{Name: "Triage", Members: []string{"@desk:clinic.example", "@kim:clinic.example"}, Numbers: []string{"+15550001111"}},
	}
	for _, tc := range []struct {
		user id.UserID
		want []string
	}{
		{"@desk:clinic.example", nil},
		{"@kim:clinic.example", []string{"+15550001111"}},
	} {
		assert.Equal(t, tc.want, c.inboxNumbers(tc.user), tc.user.String())
	}
}
