-- MiniTwit schema: users, their messages, who follows whom, and the simulator's latest action.
-- depends:

-- Length limits are part of the contract with the app (minitwit.validation keeps the same
-- numbers and gives the user-facing message first); the database is the last line of defence.
CREATE TABLE users (
    user_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username   text        NOT NULL,
    email      text        NOT NULL,
    pw_hash    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_username_length CHECK (char_length(username) BETWEEN 1 AND 64),
    CONSTRAINT users_email_valid CHECK (char_length(email) BETWEEN 3 AND 254 AND email LIKE '%@%'),
    CONSTRAINT users_pw_hash_present CHECK (pw_hash <> '')
);

CREATE TABLE messages (
    message_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author_id  bigint      NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    text       text        NOT NULL,
    pub_date   timestamptz NOT NULL DEFAULT now(),
    flagged    boolean     NOT NULL DEFAULT false,
    CONSTRAINT messages_text_length CHECK (char_length(text) BETWEEN 1 AND 1000)
);

-- Timelines read unflagged messages newest first, 30 (web) or N (API) at a time, with keyset
-- paging on (pub_date, message_id). Partial indexes keep moderated rows out of the hot path.
CREATE INDEX messages_public_timeline_idx
    ON messages (pub_date DESC, message_id DESC) WHERE NOT flagged;
CREATE INDEX messages_author_timeline_idx
    ON messages (author_id, pub_date DESC, message_id DESC) WHERE NOT flagged;

CREATE TABLE follows (
    follower_id bigint      NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    followed_id bigint      NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followed_id),
    CONSTRAINT follows_no_self_follow CHECK (follower_id <> followed_id)
);
-- "Who follows this user" (and the foreign key's ON DELETE) without scanning the table.
CREATE INDEX follows_followed_idx ON follows (followed_id);

-- The latest simulator action id: one row, so that every replica reads the same value.
CREATE TABLE simulator_latest (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT simulator_latest_one_row CHECK (singleton),
    action_id bigint  NOT NULL DEFAULT -1
);
INSERT INTO simulator_latest DEFAULT VALUES;
