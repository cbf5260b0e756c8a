package securechat

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/carebridge/carebridge/config"
	"github.com/carebridge/carebridge/database"
	"github.com/carebridge/carebridge/internal/loop"
)

// LinkPath is where links start ("/s/{token}"): short, because it goes in an SMS.
const LinkPath = "/s/"

// Backend is what the bridge does for secure mode: texting the patient through the
// conversation's clinic number and putting the patient's messages into the room.
type Backend interface {
	// SendSMS is called to text a one-time code; text holds no clinical content.
	SendSMS(ctx context.Context, conv *database.Conversation, text string) error
	// PatientMessage is called after a patient's message is stored, to put it into the
	// conversation room as the patient's ghost. It returns the Matrix event ID.
	PatientMessage(ctx context.Context, conv *database.Conversation, msg *Message, data []byte) (string, error)
	// PatientRead is called when the patient has seen staff messages, with the newest one.
	PatientRead(ctx context.Context, conv *database.Conversation, newest *Message) error
}

// Message is one message of the secure chat, opened.
type Message struct {
	ID          int64
	FromPatient bool
	SenderName  string
	Kind        database.SecureMessageKind
	Text        string // the text, or for files the file name
	ContentType string
	Size        int64
	CreatedAt   time.Time
	Read        bool
	EventID     string
	// Width and Height are the size the chat shows a photo at (0: unknown, or not shown
	// inline); HasPreview says a smaller copy of it is kept for the page.
	Width, Height int
	HasPreview    bool
	// KeptBefore says AddStaffMessage found the message kept already: the homeserver
	// delivered its event again after the bridge stopped before answering.
	KeptBefore bool
}

// Service is secure mode's logic over the database; the pages and the bridge call it.
type Service struct {
	DB         *database.Database
	Config     *config.SecureChatConfig
	ClinicName string
	PublicBase string
	Keys       *Keyring
	Backend    Backend
	Hub        *Hub
	// Metrics counts code outcomes; nil counts nothing.
	Metrics Metrics

	// Now is the clock (tests move it).
	Now func() time.Time

	// The bridge's pass over what web replicas hand to it, and the signals between
	// processes (handoff.go, live.go).
	handoff  handoffState
	handoffs *loop.Loop
	live     *liveState
}

// NewService builds the service with the key ring the config names. The backend may be
// set later, before use.
func NewService(db *database.Database, cfg *config.SecureChatConfig, clinicName, publicBase string) (*Service, error) {
	keys, err := KeyringFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewServiceWithKeys(db, cfg, keys, clinicName, publicBase), nil
}

// NewServiceWithKeys builds the service on a key ring the caller already built (the bridge
// builds one for everything it seals).
func NewServiceWithKeys(db *database.Database, cfg *config.SecureChatConfig, keys *Keyring, clinicName, publicBase string) *Service {
	return &Service{DB: db, Config: cfg, ClinicName: clinicName, PublicBase: strings.TrimRight(publicBase, "/"),
		Keys: keys, Hub: NewHub(), Now: time.Now}
}

func (s *Service) now() time.Time { return time.UnixMilli(s.Now().UnixMilli()) }

func randomToken(n int) (string, error) {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// audit appends one event to the audit log. Called inside txn, it is part of the action's
// transaction: when it cannot be written, the action does not happen either.
func (s *Service) audit(ctx context.Context, actor database.AuditActor, conv *database.Conversation, event database.AuditEvent,
	outcome database.AuditOutcome, detail string) error {
	err := s.DB.Audit.Append(ctx, &database.AuditEntry{Actor: actor, LoginID: conv.LoginID, PortalID: conv.PortalID,
		Event: event, Outcome: outcome, Detail: detail, At: s.now()})
	if err != nil {
		return fmt.Errorf("failed to write the audit log (%s): %w", event, err)
	}
	return nil
}

// txn runs an action and its audit rows in one database transaction.
func (s *Service) txn(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.DB.DoTxn(ctx, nil, fn)
}

// Audited runs a change to the database and its audit event in one transaction.
func (s *Service) Audited(ctx context.Context, actor database.AuditActor, conv *database.Conversation, event database.AuditEvent,
	outcome database.AuditOutcome, detail string,
	change func(ctx context.Context) error) error {
	return s.DB.Audited(ctx, &database.AuditEntry{Actor: actor, LoginID: conv.LoginID, PortalID: conv.PortalID,
		Event: event, Outcome: outcome, Detail: detail, At: s.now()}, change)
}

// auditAlone writes an event that goes with no change of ours (a refusal, a failed
// send); a failure to write it is logged, and the caller's answer stands.
func (s *Service) auditAlone(ctx context.Context, actor database.AuditActor, conv *database.Conversation, event database.AuditEvent,
	outcome database.AuditOutcome, detail string) {
	if err := s.audit(ctx, actor, conv, event, outcome, detail); err != nil {
		zerolog.Ctx(ctx).Err(err).Str("event", string(event)).Msg("Failed to write audit log")
	}
}

// patientActor names a patient's session in the audit log by a prefix of its keyed hash.
func patientActor(sessionHash string) database.AuditActor {
	return database.PatientSessionActor(sessionHash)
}

// ---- links ----------------------------------------------------------------------

// IssueLink creates a link to the conversation's secure chat (at least 144 random bits;
// only its keyed hash is stored) and returns its URL.
func (s *Service) IssueLink(ctx context.Context, conv *database.Conversation, actor database.AuditActor) (string, error) {
	token, err := randomToken(18)
	if err != nil {
		return "", err
	}
	now := s.now()
	err = s.Audited(ctx, actor, conv, database.EventLinkIssued, database.OutcomeOK, "", func(ctx context.Context) error {
		return s.DB.Link.Insert(ctx, &database.SecureLink{TokenHash: s.Keys.Hash("link", token), LoginID: conv.LoginID,
			PortalID: conv.PortalID, CreatedAt: now, ExpiresAt: now.Add(s.Config.LinkLifetime)})
	})
	if err != nil {
		return "", fmt.Errorf("failed to store link: %w", err)
	}
	return s.PublicBase + LinkPath + token, nil
}

// Revoke ends every link and session of the conversation.
func (s *Service) Revoke(ctx context.Context, conv *database.Conversation, actor database.AuditActor) error {
	now := s.now()
	err := s.Audited(ctx, actor, conv, database.EventLinkRevoked, database.OutcomeOK, "all links and sessions", func(ctx context.Context) error {
		if err := s.DB.Link.RevokeAll(ctx, conv.LoginID, conv.PortalID, now); err != nil {
			return err
		}
		return s.DB.Session.EndAll(ctx, conv.LoginID, conv.PortalID, now)
	})
	if err != nil {
		return err
	}
	s.Hub.Publish(conv.LoginID, conv.PortalID)
	return nil
}

// Unlock lifts a lockout after wrong codes.
func (s *Service) Unlock(ctx context.Context, conv *database.Conversation, actor database.AuditActor) error {
	return s.Audited(ctx, actor, conv, database.EventCodeUnlocked, database.OutcomeOK, "", func(ctx context.Context) error {
		return s.DB.Link.UnlockAll(ctx, conv.LoginID, conv.PortalID)
	})
}

// SetDOB records the date of birth the patient must also enter (YYYY-MM-DD), kept only
// as a keyed hash; "" clears it.
func (s *Service) SetDOB(ctx context.Context, conv *database.Conversation, dob string, actor database.AuditActor) error {
	hash := ""
	if dob != "" {
		normalized, err := NormalizeDOB(dob)
		if err != nil {
			return err
		}
		hash = s.dobHash(conv, normalized)
	}
	return s.Audited(ctx, actor, conv, database.EventDOBRecorded, database.OutcomeOK, map[bool]string{true: "cleared", false: "set"}[hash == ""],
		func(ctx context.Context) error {
			return s.DB.Conversation.SetDOBHash(ctx, conv.LoginID, conv.PortalID, hash)
		})
}

func (s *Service) dobHash(conv *database.Conversation, dob string) string {
	return s.Keys.Hash("dob:"+conv.PatientPhone, dob)
}

// NormalizeDOB checks a date of birth and returns it as YYYY-MM-DD.
func NormalizeDOB(raw string) (string, error) {
	t, err := time.Parse("2006-01-02", strings.TrimSpace(raw))
	if err != nil || t.Year() < 1900 || t.After(time.Now()) {
		return "", ErrInvalidDOB
	}
	return t.Format("2006-01-02"), nil
}

// Link is an opened link: its row and its conversation.
type Link struct {
	Row          *database.SecureLink
	Conversation *database.Conversation
}

// CheckLink looks a link up by its token. It changes nothing and sends nothing, since
// SMS apps and scanners fetch links for previews; it returns the link with a named
// error when it cannot be used (unknown, expired, revoked, locked).
func (s *Service) CheckLink(ctx context.Context, token string) (*Link, error) {
	if len(token) < 20 || len(token) > 64 {
		return nil, ErrLinkUnknown
	}
	// A link texted before a key rotation was hashed with the key current then.
	var row *database.SecureLink
	for _, hash := range s.Keys.Hashes("link", token) {
		var err error
		if row, err = s.DB.Link.Get(ctx, hash); err != nil {
			return nil, err
		} else if row != nil {
			break
		}
	}
	if row == nil {
		return nil, ErrLinkUnknown
	}
	conv, err := s.DB.Conversation.Get(ctx, row.LoginID, row.PortalID)
	if err != nil {
		return nil, err
	} else if conv == nil {
		return nil, ErrLinkUnknown
	}
	link := &Link{Row: row, Conversation: conv}
	switch {
	case !row.RevokedAt.IsZero():
		return link, ErrLinkRevoked
	case !s.now().Before(row.ExpiresAt):
		return link, ErrLinkExpired
	case !row.LockedAt.IsZero():
		return link, ErrLinkLocked
	}
	return link, nil
}

// OpenLink is CheckLink for the page a patient (or a link preview) opens, audited: "link
// opened" with the outcome, or "link expired" for a link opened after it expired.
func (s *Service) OpenLink(ctx context.Context, token string) (*Link, error) {
	link, err := s.CheckLink(ctx, token)
	if link == nil {
		return nil, err // unknown links name no conversation
	}
	event, outcome := database.EventLinkOpened, database.OutcomeOK
	switch {
	case errors.Is(err, ErrLinkExpired):
		event, outcome = database.EventLinkExpired, database.OutcomeOpenedExpired
	case errors.Is(err, ErrLinkRevoked):
		outcome = database.OutcomeRevoked
	case errors.Is(err, ErrLinkLocked):
		outcome = database.OutcomeLocked
	case err != nil:
		return link, err
	}
	if auditErr := s.audit(ctx, database.PatientLinkActor, link.Conversation, event, outcome, ""); auditErr != nil {
		return nil, auditErr
	}
	return link, err
}

// ---- codes ----------------------------------------------------------------------

func randomCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// SendCode texts a new 6-digit code for a usable link, within the hourly limits per
// link and per number. The code text is a fixed template. On a web replica (no Backend)
// it stores the request, and the bridge makes the code and texts it (handoff.go).
func (s *Service) SendCode(ctx context.Context, token, lang string) error {
	link, err := s.CheckLink(ctx, token)
	if err != nil {
		return err
	}
	conv := link.Conversation
	if s.Backend == nil && conv.OptedOut {
		// The bridge would refuse to text it; say so now rather than promise a code.
		return ErrOptedOut
	}
	// The language of the page the patient asked from is theirs for alerts from now on.
	if supportedLang(lang) && lang != conv.PatientLanguage {
		if err = s.DB.Conversation.SetPatientLanguage(ctx, conv.LoginID, conv.PortalID, lang); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to remember the patient's language")
		}
	}
	now := s.now()
	req := &database.SecureCode{LinkHash: link.Row.TokenHash, PatientPhone: conv.PatientPhone, CodeHash: database.NewPendingCode(),
		CreatedAt: now, ExpiresAt: now.Add(s.Config.CodeLifetime)}
	// The request (and its issue, audited) is stored first, then the code made, its hash
	// stored and texted: a code that reached the phone always works. The send's outcome
	// is its own event. The limits are counted by the statement that stores the request,
	// so requests at once, in any process, cannot all pass them.
	err = s.Audited(ctx, database.PatientLinkActor, conv, database.EventCodeIssued, database.OutcomeOK, "", func(ctx context.Context) error {
		stored, err := s.DB.Code.InsertWithinLimit(ctx, req, now.Add(-time.Hour), s.Config.CodesPerHour)
		if err == nil && !stored {
			err = ErrRateLimited
		}
		return err
	})
	if errors.Is(err, ErrRateLimited) {
		s.auditAlone(ctx, database.PatientLinkActor, conv, database.EventCodeSent, database.OutcomeRateLimited, "")
		s.metrics().CodeRateLimited()
		return ErrRateLimited
	} else if err != nil {
		return err
	}
	if s.Backend == nil {
		s.handOff(ctx)
		return nil
	}
	return s.textCode(ctx, conv, req, lang)
}

// Verify checks a code (and the date of birth when staff recorded one). A wrong answer
// counts towards the lockout, which a new code does not reset. On success it starts a
// session and returns its token (the cookie value).
//
// Each answer first claims one of the link's tries in the database, and the claim, the
// comparison and its outcome are one transaction: answers to one link are judged one at
// a time in every process, a right answer gives its try back before anyone sees it, and
// no more than max_wrong_codes wrong answers are ever compared.
func (s *Service) Verify(ctx context.Context, token, code, dob string) (string, *Link, error) {
	link, err := s.CheckLink(ctx, token)
	if err != nil {
		return "", link, err
	}
	now := s.now()
	var session string
	var wrong error // the answer was wrong: ErrWrongCode, or ErrLinkLocked when the link is now locked
	err = s.txn(ctx, func(ctx context.Context) (err error) {
		session, wrong, err = s.judgeAnswer(ctx, link, code, dob, now)
		return err
	})
	switch {
	case errors.Is(err, errNoTry):
		// Locked, or revoked or expired since CheckLink: say which.
		if _, err = s.CheckLink(ctx, token); err == nil {
			err = ErrLinkLocked
		}
		return "", link, err
	case errors.Is(err, ErrCodeExpired):
		s.auditAlone(ctx, database.PatientLinkActor, link.Conversation, database.EventCodeFailed, database.OutcomeExpired, "")
		s.metrics().CodeFailed("expired")
		return "", link, ErrCodeExpired
	case err != nil:
		return "", link, err
	case wrong != nil:
		s.metrics().CodeFailed("wrong")
		if errors.Is(wrong, ErrLinkLocked) {
			s.metrics().LinkLocked()
		}
		return "", link, wrong
	}
	return session, link, nil
}

// errNoTry is judgeAnswer's answer when the link has no try left to claim.
var errNoTry = errors.New("no code try left")

// judgeAnswer runs inside Verify's transaction. An error rolls the claimed try back
// (no code sent yet, an expired code, a failure); a wrong answer keeps it and is audited.
func (s *Service) judgeAnswer(ctx context.Context, link *Link, code, dob string, now time.Time) (session string, wrong, err error) {
	conv, linkHash, limit := link.Conversation, link.Row.TokenHash, s.Config.MaxWrongCodes
	tries, err := s.DB.Link.ClaimAttempt(ctx, linkHash, limit, now)
	if err != nil {
		return "", nil, fmt.Errorf("failed to claim a code try: %w", err)
	} else if tries == 0 {
		return "", nil, errNoTry
	}
	latest, err := s.DB.Code.Latest(ctx, linkHash)
	if err != nil {
		return "", nil, err
	} else if latest == nil || database.IsPendingCode(latest.CodeHash) || latest.CodeHash == database.CodeNotSent {
		return "", nil, ErrNoCode // the newest was asked for but not texted (yet)
	}
	codeOK := s.Keys.Match("code", strings.TrimSpace(code), latest.CodeHash) && latest.UsedAt.IsZero()
	dobOK, dobRehash := true, ""
	if conv.DOBHash != "" {
		normalized, dobErr := NormalizeDOB(dob)
		dobOK = dobErr == nil && s.Keys.Match("dob:"+conv.PatientPhone, normalized, conv.DOBHash)
		if current := s.dobHash(conv, normalized); dobOK && !Equal(current, conv.DOBHash) {
			dobRehash = current // set before a key rotation: stored again under the current key
		}
	}
	if codeOK && dobOK && !now.Before(latest.ExpiresAt) {
		return "", nil, ErrCodeExpired
	}
	if codeOK && dobOK {
		if used, err := s.DB.Code.Use(ctx, linkHash, latest.CodeHash, now); err != nil {
			return "", nil, err
		} else if !used {
			codeOK = false // used since it was read: a replay
		}
	}
	if !codeOK || !dobOK {
		event, outcome, detail, answer := database.EventCodeFailed, database.OutcomeWrong, "", ErrWrongCode
		if tries >= limit {
			event, outcome, detail, answer = database.EventCodeLocked, database.OutcomeLocked, fmt.Sprintf("%d wrong codes", tries), ErrLinkLocked
		}
		if err = s.audit(ctx, database.PatientLinkActor, conv, event, outcome, detail); err != nil {
			return "", nil, err
		}
		return "", answer, nil
	}
	if err = s.DB.Link.ReleaseAttempt(ctx, linkHash, limit); err != nil {
		return "", nil, fmt.Errorf("failed to give back the code try: %w", err)
	}
	if session, err = randomToken(32); err != nil {
		return "", nil, err
	}
	sessionHash := s.Keys.Hash("session", session)
	err = s.DB.Session.Insert(ctx, &database.SecureSession{SessionHash: sessionHash, LinkHash: linkHash,
		LoginID: conv.LoginID, PortalID: conv.PortalID, CreatedAt: now, ExpiresAt: now.Add(s.Config.SessionMax)})
	if err != nil {
		return "", nil, err
	}
	if dobRehash != "" {
		if err = s.DB.Conversation.SetDOBHash(ctx, conv.LoginID, conv.PortalID, dobRehash); err != nil {
			return "", nil, err
		}
	}
	if err = s.audit(ctx, patientActor(sessionHash), conv, database.EventCodeVerified, database.OutcomeOK, ""); err != nil {
		return "", nil, err
	}
	if err = s.audit(ctx, patientActor(sessionHash), conv, database.EventSessionStarted, database.OutcomeOK, ""); err != nil {
		return "", nil, err
	}
	return session, nil, nil
}

// ---- sessions -------------------------------------------------------------------

// Session is a verified browser.
type Session struct {
	Hash         string
	Conversation *database.Conversation
	// CSRF is the token every form of this session must carry.
	CSRF string
	// Ends is when the session ends unless the patient does something before.
	Ends time.Time
}

// Actor names the session in the audit log.
func (sess *Session) Actor() database.AuditActor { return patientActor(sess.Hash) }

// Session returns the open session for a cookie value and records activity. A session
// idle for session_idle or older than session_max ends (HIPAA automatic logoff).
func (s *Service) Session(ctx context.Context, token string) (*Session, error) {
	return s.session(ctx, token, true)
}

// CheckSession is Session without recording activity, for what an open page does on its
// own (live updates), so that a page left open does not keep its session alive.
func (s *Service) CheckSession(ctx context.Context, token string) (*Session, error) {
	return s.session(ctx, token, false)
}

func (s *Service) session(ctx context.Context, token string, touch bool) (*Session, error) {
	if token == "" || len(token) > 64 {
		return nil, ErrSessionEnded
	}
	var hash string
	var row *database.SecureSession
	for _, candidate := range s.Keys.Hashes("session", token) {
		var err error
		if row, err = s.DB.Session.Get(ctx, candidate); err != nil {
			return nil, err
		} else if row != nil {
			hash = candidate
			break
		}
	}
	if row == nil || !row.EndedAt.IsZero() {
		return nil, ErrSessionEnded
	}
	now := s.now()
	conv, err := s.DB.Conversation.Get(ctx, row.LoginID, row.PortalID)
	if err != nil {
		return nil, err
	} else if conv == nil {
		return nil, ErrSessionEnded
	}
	if now.Sub(row.LastSeenAt) >= s.Config.SessionIdle || !now.Before(row.ExpiresAt) {
		reason := "idle"
		if !now.Before(row.ExpiresAt) {
			reason = "maximum length"
		}
		err = s.Audited(ctx, patientActor(hash), conv, database.EventSessionTimedOut, database.OutcomeEnded, reason, func(ctx context.Context) error {
			return s.DB.Session.End(ctx, hash, now)
		})
		if err != nil {
			return nil, err
		}
		return nil, ErrSessionEnded
	}
	lastSeen := row.LastSeenAt
	if touch {
		if err = s.DB.Session.Touch(ctx, hash, now); err != nil {
			return nil, err
		}
		lastSeen = now
	}
	ends := lastSeen.Add(s.Config.SessionIdle)
	if row.ExpiresAt.Before(ends) {
		ends = row.ExpiresAt
	}
	return &Session{Hash: hash, Conversation: conv, CSRF: s.Keys.Hash("csrf", hash)[:32], Ends: ends}, nil
}

// SignOut ends a session at once.
func (s *Service) SignOut(ctx context.Context, sess *Session) error {
	return s.Audited(ctx, sess.Actor(), sess.Conversation, database.EventSessionEnded, database.OutcomeSignedOut, "", func(ctx context.Context) error {
		return s.DB.Session.End(ctx, sess.Hash, s.now())
	})
}

// ---- messages -------------------------------------------------------------------

func additional(conv *database.Conversation, part string) []byte {
	return MessageAdditional(conv.LoginID, conv.PortalID, part)
}

func (s *Service) open(conv *database.Conversation, row *database.SecureMessage) (*Message, error) {
	body, err := s.Keys.Open(row.KeyID, row.Body, additional(conv, "body"))
	if err != nil {
		return nil, fmt.Errorf("failed to open secure message %d: %w", row.ID, err)
	}
	return &Message{ID: row.ID, FromPatient: row.FromPatient, SenderName: row.SenderName, Kind: row.Kind, Text: string(body),
		ContentType: row.ContentType, Size: row.Size, CreatedAt: row.CreatedAt, Read: !row.ReadAt.IsZero(), EventID: row.EventID,
		Width: row.Width, Height: row.Height, HasPreview: row.HasThumb}, nil
}

// store seals and stores one message, with its audit event, in one transaction. text is
// the text, or the file name for files. A photo gets its preview for the page.
func (s *Service) store(ctx context.Context, actor database.AuditActor, event database.AuditEvent, conv *database.Conversation, fromPatient bool, sender string,
	kind database.SecureMessageKind, text, contentType string, data []byte, eventID string) (*Message, error) {
	keyID, body, err := s.Keys.Seal([]byte(text), additional(conv, "body"))
	if err != nil {
		return nil, err
	}
	row := &database.SecureMessage{LoginID: conv.LoginID, PortalID: conv.PortalID, FromPatient: fromPatient,
		SenderName: sender, Kind: kind, ContentType: contentType, Size: int64(len(data)), KeyID: keyID, Body: body,
		EventID: eventID, CreatedAt: s.now()}
	if data != nil {
		if _, row.Data, err = s.Keys.Seal(data, additional(conv, "data")); err != nil {
			return nil, err
		}
	}
	if kind == database.SecureImage {
		if preview, ok := makePreview(contentType, data); ok {
			row.Width, row.Height = preview.Width, preview.Height
			if preview.Thumb != nil {
				if _, row.Thumb, err = s.Keys.Seal(preview.Thumb, additional(conv, thumbPart)); err != nil {
					return nil, err
				}
			}
		}
	}
	err = s.Audited(ctx, actor, conv, event, database.OutcomeOK, string(kind), func(ctx context.Context) error {
		return s.DB.Secure.Insert(ctx, row)
	})
	if err != nil {
		return nil, fmt.Errorf("failed to store secure message: %w", err)
	}
	return s.open(conv, row)
}

// AddStaffMessage keeps a staff message (text, or a file with its name) for the web chat;
// actor is the staff member's Matrix ID, sender the name the patient sees. A message of
// an event kept before is not kept again: that one is returned, marked KeptBefore.
func (s *Service) AddStaffMessage(ctx context.Context, conv *database.Conversation, actor database.AuditActor, sender string,
	kind database.SecureMessageKind, text, contentType string, data []byte, eventID string) (*Message, error) {
	if eventID != "" {
		row, err := s.DB.Secure.GetStaffByEvent(ctx, conv.LoginID, conv.PortalID, eventID)
		if err != nil {
			return nil, fmt.Errorf("failed to look for the secure message: %w", err)
		} else if row != nil {
			msg, err := s.open(conv, row)
			if err == nil {
				msg.KeptBefore = true
			}
			return msg, err
		}
	}
	msg, err := s.store(ctx, actor, database.EventSecureMessageStored, conv, false, s.staffShownName(actor, sender), kind, text, contentType, data, eventID)
	if err != nil {
		return nil, err
	}
	s.Hub.Publish(conv.LoginID, conv.PortalID)
	return msg, nil
}

// staffShownName is a staff member as the patient sees them: the name the bridge gives
// (their display name in the room) and the role secure_chat.pages.staff_roles gives their
// Matrix ID ("Jane, Nurse"). The pages add the clinic.
func (s *Service) staffShownName(actor database.AuditActor, name string) string {
	if s.Config == nil || actor.Kind != database.ActorStaff {
		return name
	}
	role := strings.TrimSpace(s.Config.Pages.StaffRoles[actor.Name])
	switch {
	case role == "":
		return name
	case name == "":
		return role
	}
	return name + ", " + role
}

// AddPatientMessage stores a patient's message from the web chat and hands it to the
// bridge for the room. A message stored but not yet in the room is retried by the caller.
func (s *Service) AddPatientMessage(ctx context.Context, sess *Session, kind database.SecureMessageKind,
	text, contentType string, data []byte) (*Message, error) {
	conv := sess.Conversation
	if contentType == "image/jpeg" {
		// Where the photo was taken (EXIF GPS) and the rest of its metadata are no one's
		// business: neither the database nor staff get them.
		stripped, err := stripJPEGMetadata(data)
		if err != nil {
			return nil, ErrUploadType
		}
		data = stripped
	}
	msg, err := s.store(ctx, sess.Actor(), database.EventMessageSent, conv, true, "", kind, text, contentType, data, "")
	if err != nil {
		return nil, err
	}
	if s.Backend == nil {
		// A web replica: the bridge puts it into the room (handoff.go).
		s.handOff(ctx)
		s.Hub.Publish(conv.LoginID, conv.PortalID)
		return msg, nil
	}
	eventID, _, err := s.deliver(ctx, conv, msg, data)
	if eventID == "" {
		return msg, fmt.Errorf("message stored but not yet in the room: %w", err)
	} else if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to record the Matrix event of a secure message")
	}
	msg.EventID = eventID
	s.Hub.Publish(conv.LoginID, conv.PortalID)
	return msg, nil
}

type redeliveryKey struct{}

// IsRedelivery tells Backend.PatientMessage that an earlier call for the message failed
// or was cut short, so the message may already be in the room.
func IsRedelivery(ctx context.Context) bool {
	v, _ := ctx.Value(redeliveryKey{}).(bool)
	return v
}

// RedeliverPending puts patient messages that were stored but did not reach the room
// (the homeserver was down, the bridge restarted) into it, oldest first. Messages newer
// than grace are left to the request that stored them.
func (s *Service) RedeliverPending(ctx context.Context, grace time.Duration) (delivered int, err error) {
	rows, err := s.DB.Secure.Undelivered(ctx, s.now().Add(-grace), 20)
	if err != nil {
		return 0, err
	}
	for _, row := range rows {
		conv, err := s.DB.Conversation.Get(ctx, row.LoginID, row.PortalID)
		if err != nil || conv == nil {
			return delivered, err
		}
		msg, err := s.open(conv, row)
		if err != nil {
			return delivered, err
		}
		var data []byte
		if row.Data != nil {
			if data, err = s.Keys.Open(row.KeyID, row.Data, additional(conv, "data")); err != nil {
				return delivered, err
			}
		}
		_, done, err := s.deliver(ctx, conv, msg, data)
		if err != nil {
			// Order matters within a conversation: stop here and try again later.
			return delivered, fmt.Errorf("failed to redeliver secure message %d: %w", row.ID, err)
		}
		if done {
			delivered++
		}
	}
	return delivered, nil
}

// Messages returns the conversation's secure messages after afterID (oldest first, up to
// 500), marks the staff ones read and tells the bridge, and audits the access.
func (s *Service) Messages(ctx context.Context, sess *Session, afterID int64) ([]*Message, error) {
	conv := sess.Conversation
	rows, err := s.DB.Secure.List(ctx, conv.LoginID, conv.PortalID, afterID, 500)
	if err != nil {
		return nil, err
	}
	msgs := make([]*Message, 0, len(rows))
	var newestStaff *Message
	for _, row := range rows {
		msg, err := s.open(conv, row)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, msg)
		if !msg.FromPatient {
			newestStaff = msg
		}
	}
	var read int64
	err = s.Audited(ctx, sess.Actor(), conv, database.EventMessagesRead, database.OutcomeOK, fmt.Sprintf("%d messages", len(msgs)), func(ctx context.Context) error {
		if newestStaff == nil {
			return nil
		}
		if read, err = s.DB.Secure.MarkRead(ctx, conv.LoginID, conv.PortalID, newestStaff.ID, s.now()); err != nil || read == 0 || s.Backend != nil {
			return err
		}
		// A web replica: the bridge shows the reading in the room (handoff.go).
		return s.DB.ReadPending.Add(ctx, &database.SecureReadPending{LoginID: conv.LoginID, PortalID: conv.PortalID,
			MessageID: newestStaff.ID, ReadAt: s.now()})
	})
	if err != nil {
		return nil, err
	}
	switch {
	case newestStaff == nil || read == 0:
	case s.Backend == nil:
		s.handOff(ctx)
	default:
		if err = s.Backend.PatientRead(ctx, conv, newestStaff); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to send the patient's read receipt")
		}
	}
	return msgs, nil
}

// File returns an attachment of the session's conversation, opened, and audits it.
func (s *Service) File(ctx context.Context, sess *Session, id int64) (*Message, []byte, error) {
	conv := sess.Conversation
	row, err := s.DB.Secure.Get(ctx, id, conv.LoginID, conv.PortalID)
	if err != nil {
		return nil, nil, err
	} else if row == nil || row.Kind == database.SecureText || row.Data == nil {
		return nil, nil, ErrNotFound
	}
	msg, err := s.open(conv, row)
	if err != nil {
		return nil, nil, err
	}
	data, err := s.Keys.Open(row.KeyID, row.Data, additional(conv, "data"))
	if err != nil {
		return nil, nil, fmt.Errorf("failed to open attachment %d: %w", id, err)
	}
	if err = s.audit(ctx, sess.Actor(), conv, database.EventAttachmentDownloaded, database.OutcomeOK, ""); err != nil {
		return nil, nil, err
	}
	return msg, data, nil
}

// Preview returns a photo's preview (see makePreview), opened, and audits it. A photo
// without one gives ErrNotFound: the page then shows the original.
func (s *Service) Preview(ctx context.Context, sess *Session, id int64) ([]byte, error) {
	conv := sess.Conversation
	keyID, sealed, err := s.DB.Secure.GetThumb(ctx, id, conv.LoginID, conv.PortalID)
	if err != nil {
		return nil, err
	} else if sealed == nil {
		return nil, ErrNotFound
	}
	thumb, err := s.Keys.Open(keyID, sealed, additional(conv, thumbPart))
	if err != nil {
		return nil, fmt.Errorf("failed to open the preview of attachment %d: %w", id, err)
	}
	if err = s.audit(ctx, sess.Actor(), conv, database.EventAttachmentDownloaded, database.OutcomeOK, "preview"); err != nil {
		return nil, err
	}
	return thumb, nil
}

// errIs reports whether err is one of the patient-facing link errors.
func errIs(err error, targets ...error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
