-- Device registry, enrollment, admin keys, the append-only audit log, and device uploads.
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    hardware_class TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'quarantined', 'revoked')),
    cert_serial TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE enrollment_tokens (
    token_sha256 TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices (id),
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE admin_keys (
    key_sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    created_at BIGINT NOT NULL
);

CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    device_id TEXT,
    detail TEXT NOT NULL
);
CREATE FUNCTION audit_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TABLE telemetry (
    id BIGSERIAL PRIMARY KEY,
    device_id TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX telemetry_device ON telemetry (device_id, received_at);

CREATE TABLE commands (
    id BIGSERIAL PRIMARY KEY,
    device_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'done', 'failed')),
    result TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX commands_device ON commands (device_id, status);

CREATE TABLE uploads (
    id BIGSERIAL PRIMARY KEY,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('attestation', 'forensics')),
    received_at BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    body TEXT NOT NULL
);
