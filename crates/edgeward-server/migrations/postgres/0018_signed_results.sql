-- Signed command results: the exact payload the device signed (in `result`), its signature
-- (base64), the payload's SHA-256 and whether the signature verified under the device's
-- certificate key (results that do not verify are refused, so a stored result is verified).
ALTER TABLE commands ADD COLUMN result_signature TEXT;
ALTER TABLE commands ADD COLUMN result_sha256 TEXT;
ALTER TABLE commands ADD COLUMN verified BIGINT NOT NULL DEFAULT 0;
