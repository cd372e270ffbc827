-- The device agent: the last telemetry event number stored per device (a batch the server
-- already holds is acknowledged, not stored twice), every device certificate issued (to
-- verify what devices sign: command results, forensic bundles), and certificates revoked
-- while their device stays registered (wipe, re-provisioning).
CREATE TABLE telemetry_seq (
    device_id TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

CREATE TABLE device_certs (
    serial TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    issued_at BIGINT NOT NULL
);

CREATE TABLE revoked_certs (
    serial TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    revoked_at BIGINT NOT NULL
);
