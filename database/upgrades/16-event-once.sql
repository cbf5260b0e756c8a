-- v15 -> v16: A staff message is queued and kept once, however often it is delivered

-- The homeserver delivers a staff message again when the bridge stopped before it answered
-- the transaction; the bridge then finds the text it queued (or the message it kept for
-- the secure chat) by the message's event instead of adding a second. Texts queued twice
-- before this version keep their event on the first only.
UPDATE outbox_message SET event_id='' WHERE kind='staff_reply' AND event_id<>'' AND id NOT IN (
    SELECT MIN(id) FROM outbox_message WHERE kind='staff_reply' AND event_id<>'' GROUP BY login_id, portal_id, event_id
);
CREATE UNIQUE INDEX outbox_message_event_idx ON outbox_message (login_id, portal_id, event_id)
    WHERE kind='staff_reply' AND event_id<>'';

UPDATE secure_message SET event_id='' WHERE from_patient=false AND event_id<>'' AND id NOT IN (
    SELECT MIN(id) FROM secure_message WHERE from_patient=false AND event_id<>'' GROUP BY login_id, portal_id, event_id
);
CREATE UNIQUE INDEX secure_message_event_idx ON secure_message (login_id, portal_id, event_id)
    WHERE from_patient=false AND event_id<>'';
