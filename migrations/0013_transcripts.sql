-- Transcripts: one row per recognised utterance of a participant during a
-- session (docs/transcripts.md). `start_time`/`end_time` are when the
-- utterance began and ended (RFC 3339, UTC); `seq` keeps insertion order.
-- The session deletes (store/session_data.rs) also delete from this table
-- by session_id.

CREATE TABLE transcripts (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    team_id           TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    room_id           TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id        TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    participant_id    TEXT NOT NULL,
    participant_name  TEXT NOT NULL,
    transcript        TEXT NOT NULL,
    start_time        TEXT NOT NULL,
    end_time          TEXT NOT NULL,
    created_at        TEXT NOT NULL
);
CREATE INDEX transcripts_room ON transcripts(room_id, start_time);
CREATE INDEX transcripts_session ON transcripts(session_id, start_time);
