// Package appservice is how a conversation room looks and who is in it: its name, topic and
// com.carebridge.conversation state (look.go), the federation allow-list kept as the server
// ACL with the membership guard and referrals, the masking of names with the pinned patient
// notice, the staff and team invites and the teams' spaces; the patient's read receipts on
// delivered texts, one per room (deliveryreceipts.go), and the appservice client's reset of
// a room's group session when the homeserver fails a send (sessionreset.go), and the bridge
// users' notifications turned off (silence.go). It works
// through narrow interfaces (Bot, Portals) that the bridge implements over bridgev2.
package appservice
