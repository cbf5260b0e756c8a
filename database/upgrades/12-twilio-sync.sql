-- v11 -> v12: How far Twilio's message log has been read for texts whose webhook never arrived

-- One row per clinic number: every inbound text Twilio sent before synced_until is stored
-- (a webhook stored it, or the catch-up found it in the message log).
CREATE TABLE twilio_sync (
    login_id     TEXT   PRIMARY KEY,
    synced_until BIGINT NOT NULL
);

-- Texts whose final status never arrived are looked up by clinic number and age.
CREATE INDEX outbound_message_status_idx ON outbound_message (login_id, status, created_at);
