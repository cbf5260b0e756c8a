-- v13 -> v14: The room policy applied to each conversation room as columns, no longer one packed string

-- The federation allow-list put into the room's server ACL, in the config's order (the
-- bridge's own server first), comma-separated: Matrix server names hold no comma. NULL
-- until a policy is applied to the room.
ALTER TABLE conversation ADD COLUMN room_acl TEXT;
-- Whether the room's name and topic show only the last four digits of the number.
ALTER TABLE conversation ADD COLUMN room_masked BOOLEAN NOT NULL DEFAULT false;
-- room_policy was "acl=<servers>|mask=<0 or 1>", or '' for none.
UPDATE conversation
    SET room_acl = substr(room_policy, 5, length(room_policy) - 11),
        room_masked = (substr(room_policy, length(room_policy) - 6) = '|mask=1')
    WHERE room_policy LIKE 'acl=%|mask=_';
ALTER TABLE conversation DROP COLUMN room_policy;
