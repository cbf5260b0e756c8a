-- v0 -> v16: Latest revision

-- One row per conversation (bridgev2 portal): a clinic number and a patient number.
CREATE TABLE conversation (
    login_id      TEXT    NOT NULL,
    portal_id     TEXT    NOT NULL,
    clinic_phone  TEXT    NOT NULL,
    patient_phone TEXT    NOT NULL,
    patient_name  TEXT    NOT NULL DEFAULT '',
    mode          TEXT    NOT NULL DEFAULT 'sms' CHECK (mode IN ('sms', 'secure')),
    opted_out     BOOLEAN NOT NULL DEFAULT false,
    -- Set once the staff are invited and the clinic login is the room's relay.
    room_ready    BOOLEAN NOT NULL DEFAULT false,
    created_at    BIGINT  NOT NULL,
    -- The patient's date of birth is kept only as a keyed hash, to compare what they type.
    dob_hash      TEXT    NOT NULL DEFAULT '',
    -- When the last secure-message alert was texted (quiet period).
    last_alert_at BIGINT  NOT NULL DEFAULT 0,
    -- The staff member who owns the conversation ('' when unassigned).
    assignee       TEXT    NOT NULL DEFAULT '',
    urgent         BOOLEAN NOT NULL DEFAULT false,
    -- When staff closed it (0: open); the patient's next text reopens it.
    closed_at      BIGINT  NOT NULL DEFAULT 0,
    -- The oldest patient message no staff reply has answered yet (0: nobody waiting).
    waiting_since  BIGINT  NOT NULL DEFAULT 0,
    -- When the after-hours reply was last texted (once per closed period).
    after_hours_at BIGINT  NOT NULL DEFAULT 0,
    -- The federation allow-list last put into the room's server ACL, comma-separated in
    -- the config's order (NULL: no policy applied yet), and whether its name is masked.
    room_acl       TEXT,
    room_masked    BOOLEAN NOT NULL DEFAULT false,
    -- The bridge's pinned notice naming the patient in a room whose name is masked.
    pinned_notice  TEXT    NOT NULL DEFAULT '',
    -- A secure-message alert held back by the quiet period is due then (0: none).
    alert_due_at   BIGINT  NOT NULL DEFAULT 0,
    -- When the reminder for secure messages still unread was texted.
    reminded_at    BIGINT  NOT NULL DEFAULT 0,
    -- The language the patient chose on the secure chat's pages ('' : the clinic's).
    patient_language TEXT  NOT NULL DEFAULT '',

    PRIMARY KEY (login_id, portal_id)
);

-- The opaque ID of each patient number's ghost (@sms_<ghost_id>): random, never derived
-- from the number, so no Matrix user ID tells it to the servers and clients that see it.
CREATE TABLE patient_ghost (
    phone      TEXT   PRIMARY KEY,
    ghost_id   TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- Patients whose ghost was named by their number (before v11). At start the bridge moves
-- each one's rooms to the opaque ghost and clears the old ghost's profile, then deletes
-- the row.
CREATE TABLE legacy_ghost (
    phone TEXT PRIMARY KEY
);

-- Inbound Twilio webhooks, stored before they are answered: de-duplication by MessageSid
-- and redelivery into Matrix after a failure or a crash.
CREATE TABLE inbound_receipt (
    message_sid     TEXT    PRIMARY KEY,
    login_id        TEXT    NOT NULL,
    patient_phone   TEXT    NOT NULL,
    -- The webhook's form parameters as JSON (holds the message body: never log it).
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    received_at     BIGINT  NOT NULL,
    next_attempt_at BIGINT  NOT NULL,
    delivered_at    BIGINT
);

CREATE INDEX inbound_receipt_due_idx ON inbound_receipt (state, next_attempt_at);
CREATE INDEX inbound_receipt_conversation_idx ON inbound_receipt (login_id, patient_phone, state, received_at);

-- Texts staff sent, with Twilio's latest delivery status: status callbacks become message
-- statuses in the room, and a late callback never turns a failure into a success.
CREATE TABLE outbound_message (
    message_sid TEXT    PRIMARY KEY,
    login_id    TEXT    NOT NULL,
    portal_id   TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    sender_mxid TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    error_code  INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    -- What kind of text it is (a staff reply, an alert, a code…), for failure notices.
    kind        TEXT    NOT NULL DEFAULT '',
    -- The bridgev2 message a staff text is stored as, for delivery receipts.
    remote_id   TEXT    NOT NULL DEFAULT ''
);

-- Attachments staff sent by MMS, served to Twilio at an unguessable URL until it expires.
-- Only the URL token's hash is kept; the file stays on the homeserver.
CREATE TABLE outbound_media (
    token_hash   TEXT   PRIMARY KEY,
    content_type TEXT   NOT NULL,
    file_name    TEXT   NOT NULL,
    size         BIGINT NOT NULL,
    mxc          TEXT   NOT NULL,
    -- The encrypted file's key and hashes as JSON (empty for unencrypted media).
    file_info    TEXT   NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX outbound_media_expiry_idx ON outbound_media (expires_at);

-- Links texted to patients. Only the token's keyed hash is kept.
CREATE TABLE secure_link (
    token_hash   TEXT    PRIMARY KEY,
    login_id     TEXT    NOT NULL,
    portal_id    TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    revoked_at   BIGINT  NOT NULL DEFAULT 0,
    failed_codes INTEGER NOT NULL DEFAULT 0,
    locked_at    BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX secure_link_conversation_idx ON secure_link (login_id, portal_id);

-- One-time codes texted to the patient's number. Only the code's keyed hash is kept.
CREATE TABLE secure_code (
    link_hash     TEXT   NOT NULL,
    patient_phone TEXT   NOT NULL,
    code_hash     TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX secure_code_link_idx ON secure_code (link_hash, created_at);
CREATE INDEX secure_code_phone_idx ON secure_code (patient_phone, created_at);

-- Verified browsers. Only the session cookie's keyed hash is kept.
CREATE TABLE secure_session (
    session_hash TEXT   PRIMARY KEY,
    link_hash    TEXT   NOT NULL,
    login_id     TEXT   NOT NULL,
    portal_id    TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX secure_session_conversation_idx ON secure_session (login_id, portal_id);

-- The secure chat's copy of a conversation: bodies, file names and files are sealed with
-- AES-256-GCM under the key named by key_id.
CREATE TABLE secure_message (
    -- only: postgres
    id           BIGINT  PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    -- only: sqlite
    id           INTEGER PRIMARY KEY,
    login_id     TEXT    NOT NULL,
    portal_id    TEXT    NOT NULL,
    from_patient BOOLEAN NOT NULL,
    sender_name  TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('text', 'image', 'file')),
    content_type TEXT    NOT NULL DEFAULT '',
    size         BIGINT  NOT NULL DEFAULT 0,
    key_id       TEXT    NOT NULL,
    body         BYTEA   NOT NULL,
    data         BYTEA,
    event_id     TEXT    NOT NULL DEFAULT '',
    created_at   BIGINT  NOT NULL,
    read_at      BIGINT  NOT NULL DEFAULT 0,
    -- A photo's preview (sealed JPEG) and the size the page shows it at.
    thumb        BYTEA,
    width        INTEGER NOT NULL DEFAULT 0,
    height       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX secure_message_conversation_idx ON secure_message (login_id, portal_id, id);
-- A staff message the homeserver delivers again is kept once (found by its event).
CREATE UNIQUE INDEX secure_message_event_idx ON secure_message (login_id, portal_id, event_id)
    WHERE from_patient=false AND event_id<>'';

-- A patient's reading in the secure chat that a web replica (carebridge web) handed to
-- the bridge, which shows it in the room as the ghost's read receipt and then deletes the
-- row: one per conversation, the newest staff message read.
CREATE TABLE secure_read_pending (
    login_id   TEXT   NOT NULL,
    portal_id  TEXT   NOT NULL,
    message_id BIGINT NOT NULL,
    read_at    BIGINT NOT NULL,

    PRIMARY KEY (login_id, portal_id)
);

-- Who did what, when, to which conversation, with what outcome; never a body or secret.
-- Each row carries the hash of the previous one, so a changed or removed row is detected.
CREATE TABLE audit_log (
    -- only: postgres
    id        BIGINT PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    -- only: sqlite
    id        INTEGER PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT   NOT NULL,
    login_id  TEXT   NOT NULL,
    portal_id TEXT   NOT NULL,
    event     TEXT   NOT NULL,
    outcome   TEXT   NOT NULL,
    detail    TEXT   NOT NULL DEFAULT '',
    prev_hash TEXT   NOT NULL,
    -- HMAC-SHA256 under the audit key derived from the secure chat key mac_key; plain
    -- SHA-256 where mac_key is '' (rows written before v10).
    hash      TEXT   NOT NULL,
    mac_key   TEXT   NOT NULL DEFAULT ''
);

-- Rows up to unkeyed_until were written before the chain was keyed; every later row must
-- carry a MAC. Rows are only added, and the smallest value counts.
CREATE TABLE audit_chain (
    unkeyed_until BIGINT NOT NULL
);
INSERT INTO audit_chain (unkeyed_until) VALUES (0);

-- Two writers appending after the same row would fork the chain: the second one fails.
CREATE UNIQUE INDEX audit_log_prev_hash_idx ON audit_log (prev_hash);
-- Retention purges and key rotation.
CREATE INDEX secure_message_created_idx ON secure_message (created_at);
CREATE INDEX secure_message_key_idx ON secure_message (key_id, id);
CREATE INDEX inbound_receipt_received_idx ON inbound_receipt (received_at);
CREATE INDEX secure_link_expiry_idx ON secure_link (expires_at);
CREATE INDEX secure_code_expiry_idx ON secure_code (expires_at);
CREATE INDEX secure_session_expiry_idx ON secure_session (expires_at);

-- Each wait of a patient ended by a staff reply: the time to first reply.
CREATE TABLE response_time (
    login_id    TEXT   NOT NULL,
    portal_id   TEXT   NOT NULL,
    waited_from BIGINT NOT NULL,
    answered_at BIGINT NOT NULL,
    answered_by TEXT   NOT NULL
);
CREATE INDEX response_time_answered_idx ON response_time (answered_at);

-- The Matrix space the bridge keeps for each team.
CREATE TABLE team_space (
    name    TEXT PRIMARY KEY,
    room_id TEXT NOT NULL
);

-- Messages staff scheduled for later; the text is sealed like the secure chat's.
CREATE TABLE scheduled_message (
    -- only: postgres
    id         BIGINT  PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    -- only: sqlite
    id         INTEGER PRIMARY KEY,
    login_id   TEXT    NOT NULL,
    portal_id  TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    send_at    BIGINT  NOT NULL,
    key_id     TEXT    NOT NULL,
    body       BYTEA   NOT NULL,
    state      TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sending', 'sent', 'cancelled', 'failed')),
    sent_at    BIGINT  NOT NULL DEFAULT 0,
    error      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX scheduled_message_due_idx ON scheduled_message (state, send_at);
CREATE INDEX scheduled_message_conversation_idx ON scheduled_message (login_id, portal_id, state);

-- The patient's name is looked up and set by number (one ghost per number).
CREATE INDEX conversation_patient_phone_idx ON conversation (patient_phone);

-- The integration API's handle on a conversation: an opaque ID (no phone number in
-- URLs) and the integration's own patient ID.
CREATE TABLE api_conversation (
    id          TEXT   PRIMARY KEY,
    login_id    TEXT   NOT NULL,
    portal_id   TEXT   NOT NULL,
    external_id TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    UNIQUE (login_id, portal_id)
);
CREATE INDEX api_conversation_external_idx ON api_conversation (external_id);

-- Messages sent through the API (REST or FHIR Communication) and their state. A FHIR
-- Communication keeps the submitted resource, sealed like the secure chat's messages.
CREATE TABLE api_message (
    id              TEXT    PRIMARY KEY,
    integration     TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    login_id        TEXT    NOT NULL,
    portal_id       TEXT    NOT NULL,
    via             TEXT    NOT NULL CHECK (via IN ('sms', 'secure')),
    secure_id       BIGINT  NOT NULL DEFAULT 0,
    message_sid     TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    read_at         BIGINT  NOT NULL DEFAULT 0,
    key_id          TEXT    NOT NULL DEFAULT '',
    resource        BYTEA
);
CREATE INDEX api_message_unread_idx ON api_message (login_id, portal_id, read_at, secure_id);

-- Idempotency-Key: a POST's key, what was asked (hash) and the answer (sealed), 24 h.
CREATE TABLE api_idempotency (
    integration  TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL DEFAULT 0,
    key_id       TEXT    NOT NULL DEFAULT '',
    response     BYTEA,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (integration, idem_key)
);
CREATE INDEX api_idempotency_created_idx ON api_idempotency (created_at);

-- Events for integrations, kept until delivered, delivered in order per integration.
CREATE TABLE api_event (
    -- only: postgres
    id              BIGINT  PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    -- only: sqlite
    id              INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    integration     TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    key_id          TEXT    NOT NULL,
    payload         BYTEA   NOT NULL,
    created_at      BIGINT  NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL DEFAULT 0,
    delivered_at    BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX api_event_pending_idx ON api_event (integration, delivered_at, id);

-- A conversation's last activity (the integration API's GET /conversations/{id}).
CREATE INDEX outbound_message_conversation_idx ON outbound_message (login_id, portal_id, created_at);

-- Every text and MMS to a patient, kept from the moment it is accepted until Twilio has
-- answered for it, so a bridge stopped at any moment sends it after the restart. The body
-- and media URLs are sealed under key_id and dropped once the text is finished.
CREATE TABLE outbox_message (
    -- only: postgres
    id              BIGINT  PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    -- only: sqlite
    id              INTEGER PRIMARY KEY,
    login_id        TEXT    NOT NULL,
    portal_id       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    from_phone      TEXT    NOT NULL,
    to_phone        TEXT    NOT NULL,
    key_id          TEXT    NOT NULL DEFAULT '',
    sealed          BYTEA,
    event_id        TEXT    NOT NULL DEFAULT '',
    sender_mxid     TEXT    NOT NULL DEFAULT '',
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    message_sid     TEXT    NOT NULL DEFAULT '',
    error_code      INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX outbox_message_conversation_idx ON outbox_message (login_id, portal_id, state, id);
CREATE INDEX outbox_message_state_idx ON outbox_message (state, next_attempt_at);
-- A staff message the homeserver delivers again is queued once (found by its event).
CREATE UNIQUE INDEX outbox_message_event_idx ON outbox_message (login_id, portal_id, event_id)
    WHERE kind='staff_reply' AND event_id<>'';

-- The database refuses to change or delete audit rows, whoever asks: the log is
-- append-only (nothing purges it; it is kept for HIPAA's six years). audit_chain, which
-- says where the keyed rows start, is guarded the same way.
-- only: postgres until "end only"
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
-- end only postgres
-- only: sqlite until "end only"
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused');
END;
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'audit_chain is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'audit_chain is append-only: DELETE refused');
END;
-- end only sqlite

-- One row per clinic number: every inbound text Twilio sent before synced_until is stored
-- (a webhook stored it, or the catch-up found it in the message log).
CREATE TABLE twilio_sync (
    login_id     TEXT   PRIMARY KEY,
    synced_until BIGINT NOT NULL
);

-- Texts whose final status never arrived are looked up by clinic number and age.
CREATE INDEX outbound_message_status_idx ON outbound_message (login_id, status, created_at);
