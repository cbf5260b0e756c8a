package bridge

import (
	"strings"
	"time"
	"unicode/utf8"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
)

// maxPatientNameLength bounds a name staff give a patient (it becomes a Matrix display name).
const maxPatientNameLength = 100

// HelpSectionCarebridge groups carebridge's own commands in `!sms help`.
var HelpSectionCarebridge = commands.HelpSection{Name: "Patient conversations", Order: 25}

var cmdName = &commands.FullHandler{
	Name: "name",
	Help: commands.HelpMeta{
		Section:     HelpSectionCarebridge,
		Description: "Set the patient's name shown for this number (room name and sender), instead of the number",
		Args:        "<full name>",
	},
	RequiresPortal: true,
	Func:           fnName,
}

func (c *Connector) registerCommands() {
	if proc, ok := c.Bridge.Commands.(*commands.Processor); ok {
		proc.AddHandlers(cmdName)
	}
}

func fnName(ce *commands.Event) {
	c := ce.Bridge.Network.(*Connector)
	name := strings.Join(strings.Fields(ce.RawArgs), " ")
	if name == "" {
		ce.Reply("Usage: `$cmdprefix name <full name>`, e.g. `$cmdprefix name Jane Doe`")
		return
	} else if utf8.RuneCountInString(name) > maxPatientNameLength {
		ce.Reply("That name is longer than %d characters.", maxPatientNameLength)
		return
	}
	phone := PhoneOf(ce.Portal.ID)
	if err := c.DB.Conversation.SetPatientName(ce.Ctx, phone, name); err != nil {
		ce.Log.Err(err).Msg("Failed to store patient name")
		ce.Reply("Failed to save the name; try again.")
		return
	}
	ghost, err := c.Bridge.GetGhostByID(ce.Ctx, MakeUserID(phone))
	if err != nil {
		ce.Log.Err(err).Msg("Failed to get patient ghost")
		ce.Reply("The name is saved but could not be shown yet; try again.")
		return
	}
	ghost.UpdateInfo(ce.Ctx, &bridgev2.UserInfo{Name: &name})
	ce.Portal.UpdateInfo(ce.Ctx, &bridgev2.ChatInfo{Name: &name}, nil, nil, time.Time{})
	ce.Reply("This number is now shown as %s.", name)
}
