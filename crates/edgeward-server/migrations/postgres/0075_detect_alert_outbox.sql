-- The alerts a detection worker found in a round, written in the round's fenced checkpoint
-- transaction and deleted once raised (stored, sent to the sinks, handed to the playbook).
-- A worker that dies between its commit and the raise leaves them here; the partition's
-- next owner raises them when it takes the partition over, so no committed alert is lost.
CREATE TABLE detect_alert_outbox (
    id BIGSERIAL PRIMARY KEY,
    stream TEXT NOT NULL,
    part BIGINT NOT NULL,
    alert TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX detect_alert_outbox_partition ON detect_alert_outbox (stream, part, id);
