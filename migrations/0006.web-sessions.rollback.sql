-- Rollback of 0006.web-sessions: every web session ends (browsers must sign in again).
DROP TABLE web_sessions;
