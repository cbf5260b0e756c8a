// Package appservice is how a conversation room looks and who is in it: its name, topic and
// com.carebridge.conversation state (look.go), the federation allow-list kept as the server
// ACL with the membership guard and referrals, the masking of names with the pinned patient
// notice, the staff and team invites and the teams' spaces. It works through narrow
// interfaces (Bot, Portals) that the bridge implements over bridgev2.
package appservice
