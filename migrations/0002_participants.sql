-- Who was in which session, and when. Written by the signaling layer as
-- participants are admitted and leave; read by the sessions/participants API.

CREATE TABLE participants (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id      TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    external_id     TEXT,
    role            TEXT NOT NULL,
    client_kind     TEXT NOT NULL DEFAULT 'browser',
    user_agent      TEXT,
    device_id       TEXT,
    joined_at       TEXT NOT NULL,
    left_at         TEXT,
    leave_reason    TEXT
);
CREATE INDEX participants_session ON participants(session_id);
CREATE INDEX participants_room_live ON participants(room_id, left_at);
CREATE INDEX participants_team_joined ON participants(team_id, joined_at);

ALTER TABLE sessions ADD COLUMN end_reason TEXT;
CREATE INDEX sessions_team_started ON sessions(team_id, started_at);
