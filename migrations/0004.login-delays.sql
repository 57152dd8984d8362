-- Sign-in throttling by growing delays (minitwit.throttle), replacing the fixed 15-minute ban.
-- depends: 0003.login-throttle

-- One row per (what is counted, for whom): the failed sign-ins in a row and when the last one
-- was (or when the last attempt past the free ones went ahead). A row quiet for a day is
-- forgotten by the next failure. scope: 'login-user' (key = client address and the username's
-- comparison key) or 'login-address' (key = client address, IPv6 by /64).
CREATE TABLE login_throttle (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    failures     integer     NOT NULL DEFAULT 1,
    last_failure timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key),
    CONSTRAINT login_throttle_key_length CHECK (char_length(key) BETWEEN 1 AND 600),
    CONSTRAINT login_throttle_failures_positive CHECK (failures >= 0)
);
-- Pruning of rows long quiet.
CREATE INDEX login_throttle_last_failure_idx ON login_throttle (last_failure);

-- The fixed windows of sign-ins are no longer read; sign-ups keep theirs.
DELETE FROM throttle WHERE scope IN ('login-user', 'login-address');
