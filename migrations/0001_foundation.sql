-- Teams, roles, rooms, tags and the sessions table the room API needs to know
-- whether a room is live. Timestamps are RFC 3339 UTC text with microseconds,
-- so they sort lexicographically.

CREATE TABLE teams (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    developer_key   TEXT NOT NULL,
    key_hash        TEXT NOT NULL UNIQUE,
    is_default      INTEGER NOT NULL DEFAULT 0,
    default_settings TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX teams_single_default ON teams(is_default) WHERE is_default = 1;

CREATE TABLE roles (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    description     TEXT,
    permissions     TEXT NOT NULL,
    builtin         INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (team_id, name)
);

CREATE TABLE rooms (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    friendly_url    TEXT NOT NULL,
    description     TEXT,
    settings        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (team_id, friendly_url)
);
CREATE INDEX rooms_friendly_url ON rooms(friendly_url);

CREATE TABLE room_tags (
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    tag             TEXT NOT NULL,
    PRIMARY KEY (room_id, tag)
);
CREATE INDEX room_tags_tag ON room_tags(tag);

CREATE TABLE sessions (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    started_at      TEXT NOT NULL,
    ended_at        TEXT
);
CREATE INDEX sessions_room ON sessions(room_id, ended_at);
