-- v9 -> v10: The audit chain is keyed (HMAC under the secure chat key ring) and its rows cannot be changed or deleted

-- The secure chat key whose derived audit key made the row's hash (an HMAC-SHA256);
-- '' for rows written before this version, whose hash is plain SHA-256.
ALTER TABLE audit_log ADD COLUMN mac_key TEXT NOT NULL DEFAULT '';

-- Rows up to unkeyed_until were written before the chain was keyed; every later row must
-- carry a MAC. Rows are only added, and the smallest value counts.
CREATE TABLE audit_chain (
    unkeyed_until BIGINT NOT NULL
);
INSERT INTO audit_chain (unkeyed_until) SELECT COALESCE(MAX(id), 0) FROM audit_log;

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
