package database_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/carebridge/carebridge/database"
)

func TestRotationQueries(t *testing.T) {
	eachDB(t, func(t *testing.T, db *database.Database) {
		ctx := context.Background()
		insert := func(keyID string, body, data []byte) int64 {
			m := &database.SecureMessage{LoginID: testLogin, PortalID: testPortal, SenderName: "Nurse Kim",
				Kind: database.SecureText, KeyID: keyID, Body: body, Data: data}
			if data != nil {
				m.Kind, m.ContentType, m.Size = database.SecureImage, "image/jpeg", int64(len(data))
				m.Thumb, m.Width, m.Height = []byte("sealed preview"), 640, 480
			}
			require.NoError(t, db.Secure.Insert(ctx, m))
			return m.ID
		}
		text1 := insert("k1", []byte("sealed text 1"), nil)
		file1 := insert("k1", []byte("sealed name"), []byte("sealed file"))
		insert("k2", []byte("sealed text 2"), nil)
		text3 := insert("k1", []byte("sealed text 3"), nil)

		counts, err := db.Secure.KeyCounts(ctx)
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"k1": 3, "k2": 1}, counts)

		batch, err := db.Secure.SealedBatch(ctx, "k1", 0, 2)
		require.NoError(t, err)
		require.Len(t, batch, 2)
		assert.Equal(t, []int64{text1, file1}, []int64{batch[0].ID, batch[1].ID}, "in ID order")
		assert.Equal(t, &database.SealedMessage{ID: text1, LoginID: testLogin, PortalID: testPortal, KeyID: "k1",
			Body: []byte("sealed text 1")}, batch[0])
		assert.True(t, batch[1].HasData)
		assert.Nil(t, batch[1].Data, "files are read one at a time")
		rest, err := db.Secure.SealedBatch(ctx, "k1", file1, 10)
		require.NoError(t, err)
		require.Len(t, rest, 1)
		assert.Equal(t, text3, rest[0].ID)

		data, thumb, err := db.Secure.SealedData(ctx, file1, "k1")
		require.NoError(t, err)
		assert.Equal(t, []byte("sealed file"), data)
		assert.Equal(t, []byte("sealed preview"), thumb)
		data, thumb, err = db.Secure.SealedData(ctx, file1, "k2")
		require.NoError(t, err)
		assert.Nil(t, data, "not sealed with k2")
		assert.Nil(t, thumb)

		resealed := &database.SealedMessage{ID: file1, KeyID: "k2", Body: []byte("new name"), Data: []byte("new file"),
			Thumb: []byte("new preview")}
		ok, err := db.Secure.Reseal(ctx, resealed, "k1")
		require.NoError(t, err)
		assert.True(t, ok)
		ok, err = db.Secure.Reseal(ctx, &database.SealedMessage{ID: file1, KeyID: "k2", Body: []byte("stale")}, "k1")
		require.NoError(t, err)
		assert.False(t, ok, "a row no longer sealed with the key it was read with is left alone")
		got, err := db.Secure.Get(ctx, file1, testLogin, testPortal)
		require.NoError(t, err)
		assert.Equal(t, "k2", got.KeyID)
		assert.Equal(t, []byte("new name"), got.Body)
		assert.Equal(t, []byte("new file"), got.Data)
		assert.True(t, got.HasThumb)
		assert.Equal(t, []int{640, 480}, []int{got.Width, got.Height}, "the size is kept")
		keyID, thumb, err := db.Secure.GetThumb(ctx, file1, testLogin, testPortal)
		require.NoError(t, err)
		assert.Equal(t, "k2", keyID)
		assert.Equal(t, []byte("new preview"), thumb)
		_, thumb, err = db.Secure.GetThumb(ctx, file1, testLogin, "15559999999")
		require.NoError(t, err)
		assert.Nil(t, thumb, "another conversation's preview is not found")
		assert.Equal(t, "Nurse Kim", got.SenderName, "only the sealed parts change")

		ok, err = db.Secure.Reseal(ctx, &database.SealedMessage{ID: text1, KeyID: "k2", Body: []byte("new text")}, "k1")
		require.NoError(t, err)
		require.True(t, ok)
		got, err = db.Secure.Get(ctx, text1, testLogin, testPortal)
		require.NoError(t, err)
		assert.Nil(t, got.Data, "a text keeps no file")

		counts, err = db.Secure.KeyCounts(ctx)
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"k1": 1, "k2": 3}, counts)

		logins, err := db.LoginMetadata(ctx)
		require.NoError(t, err)
		assert.Empty(t, logins, "no logins before bridgev2 made its tables")
	})
}
