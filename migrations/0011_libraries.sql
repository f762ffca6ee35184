-- Content libraries (Digital Samba's "library folders") and their files.
-- A library may sit inside another (parent_id) and may belong to a room
-- (room_id: deleting the room with delete_library deletes it, otherwise
-- the link is cleared; no foreign key, so the room delete can still read
-- which libraries were its own). File bytes live under the data dir by the
-- file's id, never by its name; `size` counts against the team's quota.

CREATE TABLE libraries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    parent_id       TEXT REFERENCES libraries(id) ON DELETE CASCADE,
    room_id         TEXT,
    name            TEXT NOT NULL,
    external_id     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX libraries_team ON libraries(team_id, seq);
CREATE INDEX libraries_parent ON libraries(parent_id);
CREATE INDEX libraries_room ON libraries(room_id);

CREATE TABLE library_files (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    library_id      TEXT NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            INTEGER NOT NULL,
    -- processing | ready | failed
    status          TEXT NOT NULL,
    pages           INTEGER NOT NULL DEFAULT 0,
    failure_reason  TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX library_files_library ON library_files(library_id, seq);
CREATE INDEX library_files_team ON library_files(team_id);
CREATE INDEX library_files_status ON library_files(status);
