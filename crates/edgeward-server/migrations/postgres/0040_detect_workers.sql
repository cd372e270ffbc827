-- Scale-out detection (src/detect_nats): the partitions of a telemetry stream, each with
-- its lease (owner, epoch: bumped at every takeover, so a worker that lost its lease cannot
-- commit) and its checkpoint (the last stream sequence scored); the baselines of the
-- partition's device-metrics as of that checkpoint; and how many points were scored per
-- device (written in the same transaction, so it counts each point once).
CREATE TABLE detect_partitions (
    stream TEXT NOT NULL,
    part BIGINT NOT NULL,
    owner TEXT,
    epoch BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, part)
);

CREATE TABLE detect_state (
    stream TEXT NOT NULL,
    part BIGINT NOT NULL,
    device_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (stream, device_id, metric)
);
CREATE INDEX detect_state_part ON detect_state (stream, part);

CREATE TABLE detect_scored (
    stream TEXT NOT NULL,
    device_id TEXT NOT NULL,
    points BIGINT NOT NULL,
    alerts BIGINT NOT NULL,
    PRIMARY KEY (stream, device_id)
);
