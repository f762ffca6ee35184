-- Media counted through the SFU for each session, written when the session
-- ends (live sessions are read from the running room instead).

ALTER TABLE sessions ADD COLUMN packets_in INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN bytes_in INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN packets_out INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN bytes_out INTEGER NOT NULL DEFAULT 0;
CREATE INDEX participants_external ON participants(team_id, external_id);
