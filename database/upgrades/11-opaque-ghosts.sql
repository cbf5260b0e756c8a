-- v10 -> v11: A patient's ghost has an opaque ID, no longer the phone number

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
INSERT INTO legacy_ghost (phone) SELECT DISTINCT patient_phone FROM conversation;
