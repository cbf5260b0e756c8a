-- v0 -> v2: Latest revision

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

    PRIMARY KEY (login_id, portal_id)
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
    updated_at  BIGINT  NOT NULL
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
