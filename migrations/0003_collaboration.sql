-- Live collaboration: chat, Q&A, polls and quizzes. Every table carries
-- room_id (for DELETE /rooms/{room}/resources) and cascades with its room.
-- Participants are copied by value (id, name, external id) because API-sent
-- items have no participant row, and because history outlives participants.

CREATE TABLE chat_messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id      TEXT REFERENCES sessions(id) ON DELETE CASCADE,
    participant_id  TEXT,
    participant_name TEXT NOT NULL,
    external_participant_id TEXT,
    breakout_id     TEXT,
    -- Participant id of the one recipient of a private message; NULL = public.
    recipient_id    TEXT,
    message         TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX chat_messages_room ON chat_messages(room_id, seq);
CREATE INDEX chat_messages_session ON chat_messages(session_id, seq);

CREATE TABLE questions (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id      TEXT REFERENCES sessions(id) ON DELETE CASCADE,
    participant_id  TEXT,
    participant_name TEXT NOT NULL,
    external_participant_id TEXT,
    anonymous       INTEGER NOT NULL DEFAULT 0,
    breakout_id     TEXT,
    question        TEXT NOT NULL,
    -- open | dismissed
    status          TEXT NOT NULL DEFAULT 'open',
    -- NULL | active | done (a live answer in progress / given)
    live_answer_status TEXT,
    live_answer_by  TEXT,
    live_answer_started_at TEXT,
    live_answer_ended_at TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX questions_room ON questions(room_id, seq);
CREATE INDEX questions_session ON questions(session_id);

CREATE TABLE question_answers (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    question_id     TEXT NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    participant_id  TEXT,
    participant_name TEXT NOT NULL,
    external_participant_id TEXT,
    answer          TEXT NOT NULL,
    private         INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX question_answers_question ON question_answers(question_id, seq);

-- One vote per participant and question: voter_key is `id:<participant id>`
-- or `ext:<external id>` / `name:<name>` for API-named participants.
CREATE TABLE question_votes (
    question_id     TEXT NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    voter_key       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (question_id, voter_key)
);

CREATE TABLE polls (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    -- The session the poll was last launched in.
    session_id      TEXT REFERENCES sessions(id) ON DELETE SET NULL,
    question        TEXT NOT NULL,
    -- single | multiple | free
    type            TEXT NOT NULL,
    anonymous       INTEGER NOT NULL DEFAULT 0,
    show_results    INTEGER NOT NULL DEFAULT 1,
    -- JSON array of {"id", "label"}, in order.
    options         TEXT NOT NULL,
    -- draft | launched | ended
    status          TEXT NOT NULL DEFAULT 'draft',
    launched_at     TEXT,
    ended_at        TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX polls_room ON polls(room_id, seq);

-- One answer per participant and poll.
CREATE TABLE poll_votes (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    poll_id         TEXT NOT NULL REFERENCES polls(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id      TEXT REFERENCES sessions(id) ON DELETE CASCADE,
    participant_id  TEXT NOT NULL,
    participant_name TEXT NOT NULL,
    -- JSON array of option ids (single/multiple); NULL for free polls.
    option_ids      TEXT,
    -- The free-text answer (free polls).
    answer_text     TEXT,
    created_at      TEXT NOT NULL,
    UNIQUE (poll_id, participant_id)
);

CREATE TABLE quizzes (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    team_id         TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id      TEXT REFERENCES sessions(id) ON DELETE SET NULL,
    title           TEXT NOT NULL,
    time_limit_seconds INTEGER,
    -- NULL | quiz | question
    timing_mode     TEXT,
    -- JSON array of {"id", "text", "multiple", "choices": [{"id", "text", "correct"}]}.
    questions       TEXT NOT NULL,
    -- created | launched | ended
    status          TEXT NOT NULL DEFAULT 'created',
    started_at      TEXT,
    ended_at        TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX quizzes_room ON quizzes(room_id, seq);

-- One answer per participant and quiz question.
CREATE TABLE quiz_answers (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    quiz_id         TEXT NOT NULL REFERENCES quizzes(id) ON DELETE CASCADE,
    room_id         TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    session_id      TEXT REFERENCES sessions(id) ON DELETE CASCADE,
    question_id     TEXT NOT NULL,
    participant_id  TEXT NOT NULL,
    participant_name TEXT NOT NULL,
    -- JSON array of choice ids.
    choice_ids      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    UNIQUE (quiz_id, question_id, participant_id)
);
