-- Telemetry is an append-only log, indexed by arrival time only. An index by device put
-- every row of a batch on another index page: with 128 devices SQLite wrote ~12 µs of
-- pages per row (WAL frames are whole pages), with one device 2 µs. By time, a commit
-- touches the same few pages whatever the fleet's size. Per-device reads filter a time
-- range (or scan, for a device's total). PostgreSQL logs rows, not pages, and keeps its
-- index by device.
DROP INDEX telemetry_device;
CREATE INDEX telemetry_time ON telemetry (received_at);
