-- Staged rollouts of releases in the update repository (issue 16). `rollouts` holds one
-- row per release version: who its current stage offers it to (`selector` is `percent`,
-- `devices` or `hardware`, `target` its argument: basis points, a JSON list of device ids,
-- a hardware class), when that stage halts itself (`threshold_bp`, `min_sample`), and
-- whether it has. Each new rollout of a version starts the next stage.
CREATE TABLE rollouts (
    version TEXT PRIMARY KEY,
    stage BIGINT NOT NULL,
    selector TEXT NOT NULL,
    target TEXT NOT NULL,
    threshold_bp BIGINT NOT NULL,
    min_sample BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    halted_at BIGINT,
    halt_reason TEXT
);
-- What devices reported, the first report of each phase per device and version (a device
-- may send a report again; it counts once). `stage` is the stage the device was offered
-- the release in, so a stage's failure rate counts its own devices.
CREATE TABLE update_reports (
    device_id TEXT NOT NULL,
    version TEXT NOT NULL,
    phase TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT,
    detail TEXT NOT NULL,
    stage BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (device_id, version, phase)
);
CREATE INDEX update_reports_by_stage ON update_reports (version, stage, phase);
