-- Containment's "drop the device's live sessions" reaches every replica sharing the registry
-- (and is what a detection worker, which holds no device connection, asks for): each
-- request is a row, and every other replica closes the named device's open connections
-- when it reads the row (with the revocations, every 400 ms). Rows older than an hour
-- are deleted when a new one is written.
CREATE TABLE session_drops (
    id BIGSERIAL PRIMARY KEY,
    device_id TEXT NOT NULL,
    -- The recording process's random instance name (it does not follow its own rows).
    origin TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
