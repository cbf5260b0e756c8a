package testenv

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/carebridge/carebridge/internal/dendrite"
)

// The agent runs under Debian's interpreter: the python3 on PATH may be another one
// that cannot import the python3-matrix-nio and python3-olm packages.
const agentPython = "/usr/bin/python3"

const (
	agentReadyTimeout = 60 * time.Second
	agentStopTimeout  = 5 * time.Second
)

//go:embed staff_agent.py
var staffAgentScript []byte

var (
	nioCheckOnce sync.Once
	nioCheckErr  error
)

// NioAvailable reports why the nio agent cannot run here, or nil when it can.
func NioAvailable() error {
	nioCheckOnce.Do(func() {
		if _, err := os.Stat(agentPython); err != nil {
			nioCheckErr = err
			return
		}
		out, err := exec.Command(agentPython, "-c",
			"import nio, olm\nfrom nio.crypto import ENCRYPTION_ENABLED\nassert ENCRYPTION_ENABLED, 'nio built without encryption'").CombinedOutput()
		if err != nil {
			nioCheckErr = fmt.Errorf("%s cannot import nio with encryption: %s", agentPython, dendrite.LastLines(string(out), 3))
		}
	})
	return nioCheckErr
}

// AgentMessage is a room message the agent saw, decrypted when it was encrypted.
type AgentMessage struct {
	RoomID     string `json:"room_id"`
	EventID    string `json:"event_id"`
	Sender     string `json:"sender"`
	Body       string `json:"body"`
	MsgType    string `json:"msgtype"`
	Encrypted  bool   `json:"encrypted"`
	ServerTS   int64  `json:"server_ts"`
	ReceivedMS int64  `json:"received_ms"`
	// Backfilled is set on a message the agent found by paging back (/messages) because
	// /sync had left it out (after a limited timeline or a homeserver restart): it was
	// handed over after messages that follow it in the room.
	Backfilled bool `json:"backfilled"`
	// For media messages: the type, and the SHA-256 and size of the downloaded (and
	// decrypted) bytes, or the download error.
	MimeType       string `json:"mimetype"`
	MediaSHA256    string `json:"media_sha256"`
	MediaSize      int    `json:"media_size"`
	MediaEncrypted bool   `json:"media_encrypted"`
	MediaError     string `json:"media_error"`
	// Set by the Element agent (StartElementAgent) on encrypted messages: the shield
	// Element draws beside the message ("none", "grey" or "red") and its reason, as
	// matrix-js-sdk's EventShieldReason names it (e.g. "MISMATCHED_SENDER"), and the
	// device that encrypted it.
	Shield       string `json:"shield"`
	ShieldReason string `json:"shield_reason"`
	SenderDevice string `json:"sender_device"`
}

// ReceivedAt is when the agent's sync loop handed the message over.
func (m AgentMessage) ReceivedAt() time.Time { return time.UnixMilli(m.ReceivedMS) }

// AgentUndecryptable is an encrypted event whose key had not arrived 3 s after the event.
type AgentUndecryptable struct {
	RoomID    string `json:"room_id"`
	EventID   string `json:"event_id"`
	Sender    string `json:"sender"`
	SessionID string `json:"session_id"`
	// Reason is why it did not decrypt, as the Element agent's crypto says it
	// (matrix-js-sdk's DecryptionFailureCode, e.g. "MEGOLM_UNKNOWN_INBOUND_SESSION_ID").
	Reason string `json:"reason"`
	// Error is the Element agent's text for it (what Element shows in the timeline).
	Error string `json:"error"`
}

// agentLine is any line the agent prints; Type says which fields are set.
// AgentEvent is a room event other than a message that the agent saw (decrypted when
// it was encrypted), such as a bridge's message send status.
type AgentEvent struct {
	RoomID     string          `json:"room_id"`
	EventID    string          `json:"event_id"`
	Sender     string          `json:"sender"`
	EventType  string          `json:"event_type"`
	Content    json.RawMessage `json:"content"`
	Encrypted  bool            `json:"encrypted"`
	ReceivedMS int64           `json:"received_ms"`
}

type agentLine struct {
	Type string `json:"type"`
	AgentMessage
	EventType string          `json:"event_type"`
	Content   json.RawMessage `json:"content"`
	ReqID     string          `json:"req_id"`
	UserID    string          `json:"user_id"`
	DeviceID  string          `json:"device_id"`
	SessionID string          `json:"session_id"`
	SentMS    int64           `json:"sent_ms"`
	Message   string          `json:"message"`
	Reason    string          `json:"reason"`
	Error     string          `json:"error"`
	raw       []byte          // the whole line, for replies with fields of their own
}

// StaffAgent is an independent E2EE Matrix client (matrix-nio in a Python process)
// logged in as one user with a fresh device. It joins every room it is invited to and
// records every message it sees; the Wait methods match against everything recorded
// since start, so a message that arrived before the call still counts.
type StaffAgent struct {
	UserID   string
	DeviceID string

	t          testing.TB
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	stderrPath string
	dir        string
	exited     chan struct{}

	writeMu sync.Mutex
	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever anything below changes
	ready   bool
	invited []string
	joined  []string
	msgs    []AgentMessage
	events  []AgentEvent
	undec   []AgentUndecryptable
	errs    []string
	replies map[string]agentLine
	nextReq int
	exitErr error
	closed  bool
}

// StartStaffAgent logs userID in with a new device on the homeserver and returns once
// the agent has synced and uploaded its keys. It is closed by t.Cleanup. The test is
// skipped (failed in CI) when python3-matrix-nio is missing.
func StartStaffAgent(t testing.TB, homeserverURL, userID, password string) *StaffAgent {
	t.Helper()
	RequireDep(t, DepNio, NioAvailable())
	dir := t.TempDir()
	script := filepath.Join(dir, "staff_agent.py")
	if err := os.WriteFile(script, staffAgentScript, 0o600); err != nil {
		t.Fatalf("failed to write staff agent script: %v", err)
	}
	return startAgent(t, userID, dir, agentPython, "-u", script, homeserverURL, userID, password, filepath.Join(dir, "store"))
}

// startAgent runs an agent process (argv) speaking the JSON lines of staff_agent.py, in
// dir, and returns once it says it is ready.
func startAgent(t testing.TB, userID, dir string, argv ...string) *StaffAgent {
	t.Helper()
	a := &StaffAgent{
		UserID:     userID,
		t:          t,
		stderrPath: filepath.Join(dir, "agent.stderr"),
		dir:        dir,
		exited:     make(chan struct{}),
		changed:    make(chan struct{}),
		replies:    map[string]agentLine{},
	}
	stderr, err := os.Create(a.stderrPath)
	if err != nil {
		t.Fatalf("failed to create agent stderr file: %v", err)
	}
	defer stderr.Close()
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Dir = dir
	a.cmd.Stderr = stderr
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("failed to connect to agent stdout: %v", err)
	}
	if a.stdin, err = a.cmd.StdinPipe(); err != nil {
		t.Fatalf("failed to connect to agent stdin: %v", err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("failed to start staff agent: %v", err)
	}
	go a.readLoop(stdout)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Staff agent %s stderr tail:\n%s", userID, tailFile(a.stderrPath, 20))
			if errs := a.Errors(); len(errs) > 0 {
				t.Logf("Staff agent %s errors:\n%s", userID, strings.Join(errs, "\n"))
			}
		}
		a.Close()
	})

	ctx, cancel := context.WithTimeout(context.Background(), agentReadyTimeout)
	defer cancel()
	if err := a.wait(ctx, func() bool { return a.ready }); err != nil {
		t.Fatalf("staff agent %s did not become ready: %v", userID, err)
	}
	return a
}

func (a *StaffAgent) readLoop(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var l agentLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			a.update(func() { a.errs = append(a.errs, "unparsable agent output: "+sc.Text()) })
			continue
		}
		l.raw = slices.Clone(sc.Bytes())
		a.update(func() { a.handle(l) })
	}
	err := a.cmd.Wait()
	a.update(func() {
		if err == nil {
			err = errors.New("agent exited")
		}
		a.exitErr = fmt.Errorf("staff agent exited: %w", err)
	})
	close(a.exited)
}

// handle runs with a.mu held.
func (a *StaffAgent) handle(l agentLine) {
	switch l.Type {
	case "ready":
		a.ready = true
		a.DeviceID = l.DeviceID
	case "invited":
		a.invited = append(a.invited, l.RoomID)
	case "joined":
		a.joined = append(a.joined, l.RoomID)
	case "message":
		a.msgs = append(a.msgs, l.AgentMessage)
	case "event":
		a.events = append(a.events, AgentEvent{RoomID: l.RoomID, EventID: l.EventID, Sender: l.Sender,
			EventType: l.EventType, Content: l.Content, Encrypted: l.Encrypted, ReceivedMS: l.ReceivedMS})
	case "undecryptable":
		a.undec = append(a.undec, AgentUndecryptable{RoomID: l.RoomID, EventID: l.EventID, Sender: l.Sender,
			SessionID: l.SessionID, Reason: l.Reason, Error: l.Error})
	case "error":
		if l.ReqID != "" {
			a.replies[l.ReqID] = l
		}
		a.errs = append(a.errs, l.Message)
	case "sent", "room_created", "done":
		a.replies[l.ReqID] = l
	default:
		a.errs = append(a.errs, "unknown agent output type "+strconv.Quote(l.Type))
	}
}

func (a *StaffAgent) update(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f()
	close(a.changed)
	a.changed = make(chan struct{})
}

// wait blocks until cond (called with a.mu held) is true, the agent exits or ctx ends.
func (a *StaffAgent) wait(ctx context.Context, cond func() bool) error {
	for {
		a.mu.Lock()
		ok, exitErr, changed := cond(), a.exitErr, a.changed
		a.mu.Unlock()
		if ok {
			return nil
		}
		if exitErr != nil {
			return a.withStderr(exitErr)
		}
		select {
		case <-ctx.Done():
			return a.withStderr(ctx.Err())
		case <-changed:
		}
	}
}

func (a *StaffAgent) withStderr(err error) error {
	return fmt.Errorf("%w\nagent stderr tail:\n%s", err, tailFile(a.stderrPath, 15))
}

// WaitInvite waits until the agent has been invited to roomID, or to any room when
// roomID is "", and returns the room ID.
func (a *StaffAgent) WaitInvite(ctx context.Context, roomID string) (string, error) {
	return a.waitRoom(ctx, roomID, &a.invited, "invite")
}

// WaitJoined waits until the agent's /sync shows it joined roomID, or any room when
// roomID is "", and returns the room ID.
func (a *StaffAgent) WaitJoined(ctx context.Context, roomID string) (string, error) {
	return a.waitRoom(ctx, roomID, &a.joined, "join")
}

func (a *StaffAgent) waitRoom(ctx context.Context, roomID string, rooms *[]string, what string) (string, error) {
	var found string
	err := a.wait(ctx, func() bool {
		for _, r := range *rooms {
			if roomID == "" || r == roomID {
				found = r
				return true
			}
		}
		return false
	})
	if err != nil {
		if roomID == "" {
			roomID = "any room"
		}
		return "", fmt.Errorf("%s got no %s for %s: %w", a.UserID, what, roomID, err)
	}
	return found, nil
}

// WaitMessage returns the first message, seen before or after the call, that match
// accepts.
func (a *StaffAgent) WaitMessage(ctx context.Context, match func(AgentMessage) bool) (AgentMessage, error) {
	var found AgentMessage
	err := a.wait(ctx, func() bool {
		for _, m := range a.msgs {
			if match(m) {
				found = m
				return true
			}
		}
		return false
	})
	if err != nil {
		return AgentMessage{}, fmt.Errorf("%s saw no matching message (%d seen, %d undecryptable): %w",
			a.UserID, len(a.Messages()), len(a.Undecryptable()), err)
	}
	return found, nil
}

// WaitEvent waits for a non-message room event (seen before or after the call) that matches.
func (a *StaffAgent) WaitEvent(ctx context.Context, match func(AgentEvent) bool) (AgentEvent, error) {
	var found AgentEvent
	err := a.wait(ctx, func() bool {
		for _, e := range a.events {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	})
	if err != nil {
		return AgentEvent{}, fmt.Errorf("%s saw no matching event: %w", a.UserID, err)
	}
	return found, nil
}

// Events returns every non-message room event seen so far, in arrival order.
func (a *StaffAgent) Events() []AgentEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// Messages returns every message seen so far, in arrival order.
func (a *StaffAgent) Messages() []AgentMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AgentMessage(nil), a.msgs...)
}

// Undecryptable returns the encrypted events the agent could not decrypt in time.
func (a *StaffAgent) Undecryptable() []AgentUndecryptable {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AgentUndecryptable(nil), a.undec...)
}

// Errors returns the errors the agent reported, command failures included.
func (a *StaffAgent) Errors() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.errs...)
}

// Send sends body as an m.text message, encrypted when the room is, to every device in
// the room (unverified ones included). sentAt is when the agent began the send request,
// after refreshing the room's members and devices; it includes sharing the room key on
// the first message.
func (a *StaffAgent) Send(ctx context.Context, roomID, body string) (eventID string, sentAt time.Time, err error) {
	reply, err := a.request(ctx, map[string]any{"cmd": "send", "room_id": roomID, "body": body})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("failed to send as %s: %w", a.UserID, err)
	}
	return reply.EventID, time.UnixMilli(reply.SentMS), nil
}

// SendHTML sends a formatted m.text as Element does: body is the markdown as typed, html the
// formatted body (org.matrix.custom.html), e.g. with a user pill.
func (a *StaffAgent) SendHTML(ctx context.Context, roomID, body, html string) (eventID string, err error) {
	reply, err := a.request(ctx, map[string]any{"cmd": "send", "room_id": roomID, "body": body, "formatted_body": html})
	if err != nil {
		return "", fmt.Errorf("failed to send as %s: %w", a.UserID, err)
	}
	return reply.EventID, nil
}

// SendFile uploads data (encrypted in encrypted rooms) and sends it as m.image (image
// types) or m.file, as a person attaching a photo or document would.
func (a *StaffAgent) SendFile(ctx context.Context, roomID, fileName, mimeType string, data []byte) (eventID string, err error) {
	// The file goes by path: a command line is bounded, and files may be megabytes.
	f, err := os.CreateTemp(a.dir, "upload-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err = f.Write(data); err != nil {
		_ = f.Close()
		return "", err
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	l, err := a.request(ctx, map[string]any{"cmd": "send_file", "room_id": roomID, "filename": fileName,
		"mimetype": mimeType, "path": f.Name()})
	if err != nil {
		return "", err
	}
	return l.EventID, nil
}

// Typing starts (or stops) typing in the room, as a client does while a person writes;
// the homeserver ends it by itself after 30 s.
func (a *StaffAgent) Typing(ctx context.Context, roomID string, typing bool) error {
	if _, err := a.request(ctx, map[string]any{"cmd": "typing", "room_id": roomID, "typing": typing}); err != nil {
		return fmt.Errorf("failed to send typing as %s: %w", a.UserID, err)
	}
	return nil
}

// Read marks the room read up to eventID (a read receipt and the fully-read marker), as a
// client does when the event is on screen.
func (a *StaffAgent) Read(ctx context.Context, roomID, eventID string) error {
	if _, err := a.request(ctx, map[string]any{"cmd": "read", "room_id": roomID, "event_id": eventID}); err != nil {
		return fmt.Errorf("failed to send a read receipt as %s: %w", a.UserID, err)
	}
	return nil
}

// CreateRoom creates a private room inviting the given users and returns once the
// agent's /sync shows it (with encryption enabled when asked).
func (a *StaffAgent) CreateRoom(ctx context.Context, invite []string, encrypted bool) (string, error) {
	if invite == nil {
		invite = []string{}
	}
	reply, err := a.request(ctx, map[string]any{"cmd": "create_room", "invite": invite, "encrypted": encrypted})
	if err != nil {
		return "", fmt.Errorf("failed to create room as %s: %w", a.UserID, err)
	}
	return reply.RoomID, nil
}

func (a *StaffAgent) request(ctx context.Context, cmd map[string]any) (agentLine, error) {
	a.mu.Lock()
	a.nextReq++
	reqID := strconv.Itoa(a.nextReq)
	a.mu.Unlock()
	cmd["req_id"] = reqID
	if err := a.writeCommand(cmd); err != nil {
		return agentLine{}, err
	}
	var reply agentLine
	err := a.wait(ctx, func() bool {
		r, ok := a.replies[reqID]
		if ok {
			reply = r
			delete(a.replies, reqID)
		}
		return ok
	})
	if err != nil {
		return agentLine{}, err
	}
	if reply.Type == "error" {
		return agentLine{}, errors.New(reply.Message)
	}
	return reply, nil
}

func (a *StaffAgent) writeCommand(cmd map[string]any) error {
	line, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	a.writeMu.Lock()
	defer a.writeMu.Unlock()
	if _, err := a.stdin.Write(append(line, '\n')); err != nil {
		return a.withStderr(fmt.Errorf("failed to write to agent: %w", err))
	}
	return nil
}

// Close asks the agent to quit and ends its process group if it has not within 5 s.
// It is safe to call more than once.
func (a *StaffAgent) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.mu.Unlock()
	_ = a.writeCommand(map[string]any{"cmd": "quit"})
	_ = a.stdin.Close()
	select {
	case <-a.exited:
	case <-time.After(agentStopTimeout):
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.exited
	}
}
