// Package staffclient is a staff member in mautrix-go's Matrix client with end-to-end
// encryption (goolm), as Element would be, for the demo's script and the bench: it signs
// in on a new device with a fresh crypto store, syncs in the background, and lets its
// user wait for what the sync brings.
package staffclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/event"
)

// ErrSyncStopped is wrapped by Wait when the client stopped syncing.
var ErrSyncStopped = errors.New("the staff client stopped syncing")

// Options say who signs in, where.
type Options struct {
	HomeserverURL, Localpart, Password string
	// DeviceName is the new device's display name.
	DeviceName string
	// PickleKey protects the crypto store (a throw-away folder).
	PickleKey string
	// DecryptError hears events that could not be decrypted (nil: ignored).
	DecryptError func(evt *event.Event, err error)
}

// Client is the signed-in staff member. Mu guards its user's state as well: Update and
// Wait run their functions under it.
type Client struct {
	Matrix *mautrix.Client
	Helper *cryptohelper.CryptoHelper
	Mu     sync.Mutex

	storeDir string
	cancel   context.CancelFunc
	syncDone chan struct{}
	changed  chan struct{}
	syncErr  error
}

// Login signs in with encryption. Register the syncer's handlers
// (Matrix.Syncer.(*mautrix.DefaultSyncer)), then call StartSync.
func Login(ctx context.Context, opts Options) (*Client, error) {
	client, err := mautrix.NewClient(opts.HomeserverURL, "", "")
	if err != nil {
		return nil, err
	}
	storeDir, err := os.MkdirTemp("", "carebridge-staff-")
	if err != nil {
		return nil, err
	}
	c := &Client{Matrix: client, storeDir: storeDir, changed: make(chan struct{}), syncDone: make(chan struct{})}
	helper, err := cryptohelper.NewCryptoHelper(client, []byte(opts.PickleKey), storeDir+"/crypto.db")
	if err != nil {
		_ = os.RemoveAll(storeDir)
		return nil, fmt.Errorf("failed to set up encryption: %w", err)
	}
	helper.LoginAs = &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: opts.Localpart},
		Password:                 opts.Password,
		InitialDeviceDisplayName: opts.DeviceName,
	}
	helper.DecryptErrorCallback = func(evt *event.Event, err error) {
		if opts.DecryptError != nil {
			opts.DecryptError(evt, err)
		}
	}
	c.Helper = helper
	if err = helper.Init(ctx); err != nil {
		_ = helper.Close()
		_ = os.RemoveAll(storeDir)
		return nil, fmt.Errorf("failed to sign in as %s with encryption: %w", opts.Localpart, err)
	}
	client.Crypto = helper
	return c, nil
}

// StartSync syncs in the background until Close.
func (c *Client) StartSync() {
	syncCtx, stop := context.WithCancel(context.Background())
	c.cancel = stop
	go func() {
		defer close(c.syncDone)
		if err := c.Matrix.SyncWithContext(syncCtx); err != nil && syncCtx.Err() == nil {
			c.Update(func() { c.syncErr = err })
		}
	}()
}

// Update changes the user's state under Mu and wakes every Wait.
func (c *Client) Update(f func()) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	f()
	close(c.changed)
	c.changed = make(chan struct{})
}

// Wait returns once cond (called under Mu) holds; it fails when ctx ends or the sync
// stopped (ErrSyncStopped).
func (c *Client) Wait(ctx context.Context, what string, cond func() bool) error {
	for {
		c.Mu.Lock()
		ok, changed, syncErr := cond(), c.changed, c.syncErr
		c.Mu.Unlock()
		switch {
		case ok:
			return nil
		case syncErr != nil:
			return fmt.Errorf("%w while waiting for %s: %w", ErrSyncStopped, what, syncErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s: %w", what, ctx.Err())
		}
	}
}

// Close stops syncing, signs the device out when logout is set (so that runs leave no
// devices behind), and removes its keys.
func (c *Client) Close(logout bool) {
	if c.cancel != nil {
		c.cancel()
		c.Matrix.StopSync()
		select {
		case <-c.syncDone:
		case <-time.After(10 * time.Second):
		}
	}
	if logout && c.Matrix.AccessToken != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _ = c.Matrix.Logout(ctx)
		cancel()
	}
	_ = c.Helper.Close()
	_ = os.RemoveAll(c.storeDir)
}
