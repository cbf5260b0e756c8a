package securechat

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCoreLookupsAcrossRotation: a link, a code, a session and a date of birth hashed
// under the old key still work after k2 becomes current; the date of birth is stored
// again under k2 once the patient has entered it.
func TestCoreLookupsAcrossRotation(t *testing.T) {
	eachCoreDB(t, func(t *testing.T, f *coreFixture) {
		ctx := context.Background()
		require.NoError(t, f.svc.SetDOB(ctx, f.conv, "1980-02-29", testNurse))
		token := f.link(t)
		require.NoError(t, f.svc.SendCode(ctx, token, "en"))
		code := f.backend.lastCode(t)

		rotated, err := NewKeyringOf("k2", map[string][]byte{
			"k1": []byte("0123456789abcdef0123456789abcdef"), "k2": []byte("fedcba9876543210fedcba9876543210")})
		require.NoError(t, err)
		f.svc.Keys = rotated
		_, err = f.svc.CheckLink(ctx, token)
		require.NoError(t, err, "the link texted before the rotation")
		_, _, err = f.svc.Verify(ctx, token, code, "1980-02-28")
		require.ErrorIs(t, err, ErrWrongCode, "a wrong date of birth still fails")
		session, _, err := f.svc.Verify(ctx, token, code, "1980-02-29")
		require.NoError(t, err, "the code and date of birth hashed before the rotation")
		conv, err := f.svc.DB.Conversation.Get(ctx, f.conv.LoginID, f.conv.PortalID)
		require.NoError(t, err)
		assert.Equal(t, rotated.Hash("dob:"+conv.PatientPhone, "1980-02-29"), conv.DOBHash, "stored again under k2")
		_, err = f.svc.Session(ctx, session)
		require.NoError(t, err)

		// A session started before a rotation is found after it.
		f.svc.Keys, err = NewKeyringOf("k3", map[string][]byte{"k2": []byte("fedcba9876543210fedcba9876543210"),
			"k3": []byte("abcdefabcdefabcdefabcdefabcdefab")})
		require.NoError(t, err)
		_, err = f.svc.Session(ctx, session)
		require.NoError(t, err)
	})
}
