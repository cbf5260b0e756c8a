package bridge

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/bridgev2"
)

var _ bridgev2.MembershipHandlingNetworkAPI = (*Client)(nil)

// ErrGhostMembership refuses adding or removing patient numbers from Matrix.
var ErrGhostMembership = errors.New("patients cannot be added to or removed from a conversation from Matrix: " +
	"start a conversation with their number instead (start-chat)")

// HandleMatrixMembership is called for membership changes in conversation rooms made
// from Matrix. Staff joining, leaving or being invited are Matrix-only matters and are
// accepted; SMS has no group membership, so changes to patient ghosts are refused.
func (cl *Client) HandleMatrixMembership(ctx context.Context, msg *bridgev2.MatrixMembershipChange) (*bridgev2.MatrixMembershipResult, error) {
	if _, isGhost := msg.Target.(*bridgev2.Ghost); isGhost {
		return nil, bridgev2.WrapErrorInStatus(ErrGhostMembership).WithIsCertain(true).WithSendNotice(true)
	}
	return nil, nil
}
