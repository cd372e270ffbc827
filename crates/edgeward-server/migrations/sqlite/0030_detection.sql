-- Detection and incident response: the detector's checkpoints (a restart does not forget a
-- baseline), alerts, incidents with their timeline and the actions waiting for approval,
-- and the devices whose updates are held while an incident is open. Times in *_ms columns
-- are Unix milliseconds (containment is measured in them).
CREATE TABLE detector_state (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    at BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    detail TEXT NOT NULL,
    body TEXT NOT NULL,
    incident_id BIGINT
);
CREATE INDEX alerts_device ON alerts (device_id, id);
CREATE INDEX alerts_incident ON alerts (incident_id);

CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('detected', 'contained', 'investigating', 'remediated', 'closed')),
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    rule TEXT,
    opened_ms BIGINT NOT NULL,
    trigger_ms BIGINT NOT NULL,
    contained_ms BIGINT,
    closed_ms BIGINT,
    root_cause TEXT,
    lessons TEXT
);
-- One open incident per device: later alerts join it.
CREATE UNIQUE INDEX incidents_open ON incidents (device_id) WHERE status <> 'closed';

CREATE TABLE incident_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, id);

CREATE TABLE incident_actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id BIGINT NOT NULL,
    action TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'done', 'failed')),
    requested_by TEXT NOT NULL,
    decided_by TEXT,
    created_ms BIGINT NOT NULL,
    decided_ms BIGINT
);

CREATE TABLE update_holds (
    device_id TEXT PRIMARY KEY,
    incident_id BIGINT NOT NULL,
    at_ms BIGINT NOT NULL
);
