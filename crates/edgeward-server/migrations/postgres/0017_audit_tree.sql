-- The audit log as an RFC 6962/9162 Merkle tree (see src/audit_log.rs): every perfect
-- subtree once complete (level 0 are the leaves, each naming its audit row) and the head.
-- Nodes are append-only like the entries; the head only grows, one row, updated in the
-- transaction that appends an entry.
CREATE TABLE audit_tree (
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash TEXT NOT NULL,
    audit_id BIGINT UNIQUE,
    PRIMARY KEY (level, idx)
);
CREATE TRIGGER audit_tree_no_update BEFORE UPDATE OR DELETE ON audit_tree
FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_tree_no_truncate BEFORE TRUNCATE ON audit_tree
FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    root TEXT NOT NULL
);
-- The empty tree's head is SHA-256 of the empty string.
INSERT INTO audit_head (id, size, root)
VALUES (1, 0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
CREATE FUNCTION audit_head_grows() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.size < OLD.size THEN
        RAISE EXCEPTION 'the audit log only grows';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_head_only_grows BEFORE UPDATE OR DELETE ON audit_head
FOR EACH ROW EXECUTE FUNCTION audit_head_grows();
