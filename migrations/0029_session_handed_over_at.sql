-- When a draining cluster node handed a room's open session over (NULL:
-- never, or already taken by the room's new node). Only such a session is
-- taken over by the room's next node; the open session of a node that died
-- is stale, and ends when the room is placed again (its participants never
-- left, so taking it over would count them as still there).

ALTER TABLE sessions ADD COLUMN handed_over_at TEXT;
