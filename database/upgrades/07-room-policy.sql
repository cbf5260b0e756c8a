-- v6 -> v7: Room policy (server ACL and name masking) applied to each conversation room

-- The federation allow-list and masking last applied to the room, so that a change of
-- either in the config is applied to every room once, resumably.
ALTER TABLE conversation ADD COLUMN room_policy TEXT NOT NULL DEFAULT '';

-- The bridge's pinned notice naming the patient in a room whose name is masked.
ALTER TABLE conversation ADD COLUMN pinned_notice TEXT NOT NULL DEFAULT '';
