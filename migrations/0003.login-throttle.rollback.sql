-- Rollback of 0003.login-throttle: drops the throttle counters (they are only hours of memory).
DROP TABLE throttle;
