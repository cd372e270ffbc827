-- Repeated refusals (the same actor, action, device and detail) are written as one entry
-- with how many times they happened. Indexes for the audit API's filters.
ALTER TABLE audit ADD COLUMN count BIGINT NOT NULL DEFAULT 1;
CREATE INDEX audit_actor ON audit (actor, id);
CREATE INDEX audit_device ON audit (device_id, id);
CREATE INDEX audit_action ON audit (action, id);
