-- Rollback of 0004.login-delays: drops the delay counters (hours of memory, nothing more); the
-- fixed windows start again from zero.
DROP TABLE login_throttle;
