-- Scale-out detection: each live worker's heartbeat, so that a worker that holds no
-- partition yet still counts in the fair share (without it, the first worker keeps every
-- partition and a worker added later never gets one).
CREATE TABLE detect_workers (
    stream TEXT NOT NULL,
    id TEXT NOT NULL,
    alive_until BIGINT NOT NULL,
    PRIMARY KEY (stream, id)
);
