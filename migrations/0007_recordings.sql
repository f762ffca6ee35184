-- Recordings: one row per recording of a room's session, the per-participant
-- track files the recorder wrote, and the moderators' bookmarks. Files live
-- under <recordings-dir>/<recording id>/; paths here are relative to it.

CREATE TABLE recordings (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,
    id                    TEXT NOT NULL UNIQUE,
    team_id               TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    room_id               TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id            TEXT REFERENCES sessions(id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    -- IN_PROGRESS | PROCESSING | READY | FAILED
    status                TEXT NOT NULL,
    -- The participant who started it, or 'api'.
    started_by            TEXT,
    started_at            TEXT NOT NULL,
    stopped_at            TEXT,
    -- stopped | session_ended | insufficient_storage | server_restart | error
    stop_reason           TEXT,
    -- The server stopped without finishing the files (crash, power loss).
    interrupted           INTEGER NOT NULL DEFAULT 0,
    -- Composite processing, 0..100.
    progress              INTEGER NOT NULL DEFAULT 0,
    failure_reason        TEXT,
    composite_path        TEXT,
    composite_size        INTEGER,
    composite_duration_ms INTEGER,
    archived              INTEGER NOT NULL DEFAULT 0,
    archived_at           TEXT,
    -- Packets the recorder could not take (queue full, disk slow).
    gaps                  INTEGER NOT NULL DEFAULT 0,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);
CREATE INDEX recordings_team ON recordings(team_id, seq);
CREATE INDEX recordings_room ON recordings(room_id);
CREATE INDEX recordings_session ON recordings(session_id);
CREATE INDEX recordings_status ON recordings(status);

CREATE TABLE recording_files (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    recording_id    TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    participant_id  TEXT NOT NULL,
    -- camera (camera + microphone) | screen
    source          TEXT NOT NULL,
    path            TEXT NOT NULL,
    -- webm | mkv
    container       TEXT NOT NULL,
    video_codec     TEXT,
    audio_codec     TEXT,
    width           INTEGER,
    height          INTEGER,
    -- Start of the file on the recording's timeline.
    offset_ms       INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL DEFAULT 0,
    size            INTEGER NOT NULL DEFAULT 0,
    -- Frames lost to gaps (missing packets, full queue).
    dropped_frames  INTEGER NOT NULL DEFAULT 0,
    complete        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL
);
CREATE INDEX recording_files_recording ON recording_files(recording_id, seq);

CREATE TABLE recording_bookmarks (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    recording_id    TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    participant_id  TEXT,
    name            TEXT NOT NULL,
    -- Position on the recording's timeline.
    at_ms           INTEGER NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX recording_bookmarks_recording ON recording_bookmarks(recording_id, seq);
