-- PostgreSQL mirror of migrations/0023_summaries.sql (same number, same tables and
-- columns; INTEGER -> BIGINT).

-- Session summaries (docs/transcripts.md, "Summaries"): one durable job per
-- session, written when a session with transcripts ends. `id` is the job id
-- the API serves as `job_id`; `status` is IN_PROGRESS (queued or running),
-- READY or FAILED (`failure_reason` says why). `attempts` counts how often
-- a worker picked the job up, so a job that keeps crashing the server is
-- failed instead of retried for ever. A restart resumes IN_PROGRESS jobs.
-- The summary deletes (store/session_data.rs) delete from this table by
-- session_id and by room_id.

CREATE TABLE summaries (
    id              TEXT PRIMARY KEY,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id      TEXT NOT NULL UNIQUE REFERENCES sessions(id) ON DELETE CASCADE,
    status          TEXT NOT NULL DEFAULT 'IN_PROGRESS',
    summary         TEXT NOT NULL DEFAULT '',
    failure_reason  TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX summaries_status ON summaries(status, created_at);
CREATE INDEX summaries_room ON summaries(room_id);
