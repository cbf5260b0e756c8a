package database

import (
	"context"
	"database/sql"
	"errors"

	"go.mau.fi/util/dbutil"
)

// Key rotation's statements: secure messages re-sealed row by row under the current key,
// and the Twilio auth tokens sealed inside bridgev2's user_login metadata. Every update
// compares the value it replaces, so a rotation run beside the bridge, stopped, or run
// twice never overwrites a newer write.

const (
	secureKeyCountsQuery = `SELECT key_id, COUNT(*) FROM secure_message GROUP BY key_id`
	// sealedBatchQuery walks one key's rows in ID order along secure_message_key_idx. It
	// leaves the files out: a batch of them could be large, so ResealData reads one at a time.
	sealedBatchQuery = `
		SELECT id, login_id, portal_id, key_id, body, data IS NOT NULL FROM secure_message
		WHERE key_id=$1 AND id>$2 ORDER BY id LIMIT $3
	`
	sealedDataQuery = `SELECT data, thumb FROM secure_message WHERE id=$1 AND key_id=$2`
	resealQuery     = `UPDATE secure_message SET key_id=$3, body=$4, data=$5, thumb=$6 WHERE id=$1 AND key_id=$2`

	loginMetadataQuery        = `SELECT bridge_id, id, metadata FROM user_login ORDER BY bridge_id, id`
	replaceLoginMetadataQuery = `UPDATE user_login SET metadata=$4 WHERE bridge_id=$1 AND id=$2 AND metadata=$3`
)

// SealedMessage is a secure message's sealed parts as key rotation reads and rewrites
// them. Data and Thumb are nil until read with SealedData (and stay nil for texts; Thumb
// for files without a preview).
type SealedMessage struct {
	ID       int64
	LoginID  string
	PortalID string
	KeyID    string
	Body     []byte
	HasData  bool
	Data     []byte
	Thumb    []byte
}

// KeyCounts counts the secure messages sealed with each key, by key ID.
func (mq *SecureMessageQuery) KeyCounts(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{}
	return counts, addKeyCounts(ctx, mq.GetDB(), counts, secureKeyCountsQuery)
}

// addKeyCounts adds to counts what a "SELECT key_id, COUNT(*) … GROUP BY key_id" query
// counts, by key ID.
func addKeyCounts(ctx context.Context, db *dbutil.Database, counts map[string]int, query string) error {
	rows, err := db.Query(ctx, query)
	if err != nil {
		return err
	}
	for rows.Next() {
		var keyID string
		var n int
		if err = rows.Scan(&keyID, &n); err != nil {
			_ = rows.Close()
			return err
		}
		counts[keyID] += n
	}
	return errors.Join(rows.Err(), rows.Close())
}

// SealedBatch returns up to limit messages sealed with keyID whose ID is above afterID,
// in ID order, without their files.
func (mq *SecureMessageQuery) SealedBatch(ctx context.Context, keyID string, afterID int64, limit int) ([]*SealedMessage, error) {
	rows, err := mq.GetDB().Query(ctx, sealedBatchQuery, keyID, afterID, limit)
	if err != nil {
		return nil, err
	}
	var batch []*SealedMessage
	for rows.Next() {
		m := &SealedMessage{}
		if err = rows.Scan(&m.ID, &m.LoginID, &m.PortalID, &m.KeyID, &m.Body, &m.HasData); err != nil {
			_ = rows.Close()
			return nil, err
		}
		batch = append(batch, m)
	}
	return batch, errors.Join(rows.Err(), rows.Close())
}

// SealedData reads a message's sealed file and its preview (nil if none), if it is still
// sealed with keyID.
func (mq *SecureMessageQuery) SealedData(ctx context.Context, id int64, keyID string) (data, thumb []byte, err error) {
	err = mq.GetDB().QueryRow(ctx, sealedDataQuery, id, keyID).Scan(&data, &thumb)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil
	}
	return data, thumb, err
}

// Reseal replaces a message's sealed parts (Thumb too: nil removes it) and key ID if it is still sealed with oldKeyID,
// and reports whether it was (a purged or already re-sealed row is left alone).
func (mq *SecureMessageQuery) Reseal(ctx context.Context, m *SealedMessage, oldKeyID string) (bool, error) {
	res, err := mq.GetDB().Exec(ctx, resealQuery, m.ID, oldKeyID, m.KeyID, m.Body, m.Data, m.Thumb)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// LoginMetadata is one row of bridgev2's user_login table as key rotation sees it: the
// metadata JSON, which holds the clinic number's sealed Twilio auth token.
type LoginMetadata struct {
	BridgeID string
	LoginID  string
	Metadata string
}

// LoginMetadata lists every login's metadata; none when bridgev2's tables do not exist
// yet (the bridge never started on this database).
func (db *Database) LoginMetadata(ctx context.Context) ([]*LoginMetadata, error) {
	if exists, err := db.TableExists(ctx, "user_login"); err != nil || !exists {
		return nil, err
	}
	rows, err := db.Query(ctx, loginMetadataQuery)
	if err != nil {
		return nil, err
	}
	var logins []*LoginMetadata
	for rows.Next() {
		l := &LoginMetadata{}
		if err = rows.Scan(&l.BridgeID, &l.LoginID, &l.Metadata); err != nil {
			_ = rows.Close()
			return nil, err
		}
		logins = append(logins, l)
	}
	return logins, errors.Join(rows.Err(), rows.Close())
}

// ReplaceLoginMetadata writes a login's metadata if it is still what was read, and reports
// whether it was (the bridge may have saved the login in between).
func (db *Database) ReplaceLoginMetadata(ctx context.Context, read *LoginMetadata, metadata string) (bool, error) {
	res, err := db.Exec(ctx, replaceLoginMetadataQuery, read.BridgeID, read.LoginID, read.Metadata, metadata)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
