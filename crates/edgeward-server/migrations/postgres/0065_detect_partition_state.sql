-- Scale-out detection workers run the whole detector (baselines, cohorts, rules, geography,
-- cloned certificates) per partition of the telemetry stream: the partition's checkpoint is
-- its devices' and cohorts' state, keyed as in-process detection keys `detector_state`
-- (`dev:<id>`, `cohort:<class>/<firmware>/<metric>`), written in the same fenced
-- transaction as the partition's last scored sequence. It replaces the per-metric
-- baselines of `detect_state` (a worker that starts on this version warms up again).
CREATE TABLE detect_partition_state (
    stream TEXT NOT NULL,
    part BIGINT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (stream, part, key)
);

DROP TABLE detect_state;
