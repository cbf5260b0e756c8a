-- v1 -> v2: Outbound texts and attachments, per-conversation order of inbound texts

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

CREATE INDEX inbound_receipt_conversation_idx ON inbound_receipt (login_id, patient_phone, state, received_at);

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
