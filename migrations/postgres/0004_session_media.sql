-- PostgreSQL mirror of migrations/0004_session_media.sql (same number, same tables and
-- columns; INTEGER -> BIGINT, REAL -> DOUBLE PRECISION, AUTOINCREMENT -> identity).

-- Media counted through the SFU for each session, written when the session
-- ends (live sessions are read from the running room instead).

ALTER TABLE sessions ADD COLUMN packets_in BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN bytes_in BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN packets_out BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN bytes_out BIGINT NOT NULL DEFAULT 0;
CREATE INDEX participants_external ON participants(team_id, external_id);
