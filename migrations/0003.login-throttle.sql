-- Throttling of sign-ins and sign-ups, shared by every replica (minitwit.throttle).
-- depends: 0001.initial-schema

-- One row per (what is counted, for whom): a fixed window that starts with its first hit. A hit
-- after the window has passed starts a new one, so each key has one small row, rewritten in place.
-- scope: 'login-user' (key = username), 'login-address' or 'signup-address' (key = client
-- address, IPv6 by /64).
CREATE TABLE throttle (
    scope        text        NOT NULL,
    key          text        NOT NULL,
    window_start timestamptz NOT NULL DEFAULT now(),
    hits         integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (scope, key),
    CONSTRAINT throttle_key_length CHECK (char_length(key) BETWEEN 1 AND 256),
    CONSTRAINT throttle_hits_not_negative CHECK (hits >= 0)
);
-- Pruning of windows long past.
CREATE INDEX throttle_window_start_idx ON throttle (window_start);
