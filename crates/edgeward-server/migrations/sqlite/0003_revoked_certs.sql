-- Every revoked device certificate, for good: the device CRL and the TLS deny set are made
-- from this table, not from the devices' current status (a device re-provisioned after a
-- revocation is `pending` again, but its old certificate stays revoked). Append-only, like
-- the audit log. `crl_number` is the device CRL's number, kept so it rises across restarts.
CREATE TABLE revoked_certs (
    serial TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    revoked_at BIGINT NOT NULL
);
INSERT INTO revoked_certs (serial, device_id, revoked_at)
SELECT cert_serial, id, updated_at FROM devices WHERE status = 'revoked' AND cert_serial IS NOT NULL;
CREATE TRIGGER revoked_certs_no_update BEFORE UPDATE ON revoked_certs
BEGIN SELECT RAISE(ABORT, 'revocations are permanent'); END;
CREATE TRIGGER revoked_certs_no_delete BEFORE DELETE ON revoked_certs
BEGIN SELECT RAISE(ABORT, 'revocations are permanent'); END;

CREATE TABLE crl_number (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    number BIGINT NOT NULL
);
INSERT INTO crl_number (id, number) VALUES (1, 0);
