-- v3 -> v4: Safeguards: the audit chain cannot fork; indexes for retention purges and key rotation

-- Two writers appending after the same row would fork the chain: the second one fails.
CREATE UNIQUE INDEX audit_log_prev_hash_idx ON audit_log (prev_hash);
CREATE INDEX secure_message_created_idx ON secure_message (created_at);
CREATE INDEX secure_message_key_idx ON secure_message (key_id, id);
CREATE INDEX inbound_receipt_received_idx ON inbound_receipt (received_at);
CREATE INDEX secure_link_expiry_idx ON secure_link (expires_at);
CREATE INDEX secure_code_expiry_idx ON secure_code (expires_at);
CREATE INDEX secure_session_expiry_idx ON secure_session (expires_at);
