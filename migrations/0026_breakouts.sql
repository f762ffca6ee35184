-- Breakout rooms (issue 22): sub-rooms of one live session. A participant
-- in a breakout sees and hears only that breakout; `participants.breakout_id`
-- keeps the last breakout a participant was in (null: the main room only).
-- status: created -> open -> closing -> closed.

CREATE TABLE breakouts (
    id               TEXT PRIMARY KEY,
    room_id          TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id       TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    name             TEXT NOT NULL,
    assignment       TEXT NOT NULL,
    duration_minutes INTEGER,
    status           TEXT NOT NULL,
    opened_at        TEXT,
    closed_at        TEXT,
    created_at       TEXT NOT NULL
);

CREATE INDEX breakouts_room ON breakouts(room_id, position);

ALTER TABLE participants ADD COLUMN breakout_id TEXT;
