// Package appservice is what carebridge adds on the Matrix side of a conversation room:
// who is invited (the staff invite policy) and, as later issues land, the room's mode
// state, power levels and homeserver checks.
package appservice
