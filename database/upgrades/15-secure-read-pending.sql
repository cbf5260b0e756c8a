-- v14 -> v15: Patients' readings handed from web replicas to the bridge

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
