-- Rollback of 0001: drops every MiniTwit table (and with them all data).
DROP TABLE simulator_latest;
DROP TABLE follows;
DROP TABLE messages;
DROP TABLE users;
