-- v1 -> v2: Delivery state of outbound texts, per-conversation order of inbound texts

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
