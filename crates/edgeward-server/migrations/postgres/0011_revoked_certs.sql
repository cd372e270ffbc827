-- `revoked_certs` (made by 0010) holds every revoked device certificate, for good: the
-- device CRL and the TLS deny set are made from it, not from the devices' current status (a
-- device re-provisioned after a revocation is `pending` again, but its old certificate stays
-- revoked). It is filled from the revocations made before it existed and made append-only,
-- like the audit log. `crl_number` is the device CRL's number, kept so it rises across
-- restarts.
INSERT INTO revoked_certs (serial, device_id, revoked_at)
SELECT cert_serial, id, updated_at FROM devices WHERE status = 'revoked' AND cert_serial IS NOT NULL
ON CONFLICT (serial) DO NOTHING;
CREATE FUNCTION revoked_certs_permanent() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'revocations are permanent'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER revoked_certs_no_update BEFORE UPDATE OR DELETE ON revoked_certs
FOR EACH ROW EXECUTE FUNCTION revoked_certs_permanent();
CREATE TRIGGER revoked_certs_no_truncate BEFORE TRUNCATE ON revoked_certs
FOR EACH STATEMENT EXECUTE FUNCTION revoked_certs_permanent();

CREATE TABLE crl_number (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    number BIGINT NOT NULL
);
INSERT INTO crl_number (id, number) VALUES (1, 0);
