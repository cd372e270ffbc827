//! The audit log as a Merkle tree (RFC 6962/9162), so it is tamper-evident and not only
//! append-only by the database's say-so. Every entry is a leaf (its canonical bytes, as
//! `edgeward_audit::log::Entry` writes them); the tree is stored as its perfect subtrees
//! (`audit_tree`: level, index, hash; leaves also name their `audit` row) and its head
//! (`audit_head`: size and root). An entry, its nodes and the new head are written in one
//! transaction, which starts by taking the head row, so appends from every replica are
//! serialized and nothing is ever half-applied.
//!
//! The server signs the head as a C2SP checkpoint with its audit key (`audit.key` in the
//! data directory, a C2SP signed-note Ed25519 key, created on first start; its verifier key
//! is what `edgeward-server audit-key` prints and `edgeward audit verify` pins), and answers
//! entries by range, inclusion and consistency proofs from the stored subtrees.

use std::{collections::HashMap, path::Path};

use edgeward_audit::{
    checkpoint::Checkpoint,
    log::Entry,
    merkle::{self, Frontier, Hash, NodeId},
    note::{NoteError, NoteSigner, NoteVerifier},
};
use sqlx::{Any, AnyPool, Row, Transaction};
use zeroize::Zeroizing;

use crate::db::{Db, DbError};

/// Most entries one range request returns.
pub const MAX_ENTRIES_PER_REQUEST: u64 = 1000;

/// The audit key's file name in the data directory.
pub const KEY_FILE: &str = "audit.key";

/// The server's audit-log signer.
#[derive(Debug)]
pub struct AuditSigner {
    signer: NoteSigner,
}

impl AuditSigner {
    /// Loads the key from `path`, creating it (0600) if missing, named
    /// `edgeward-audit/<16 random hex digits>`: a log's origin must be unique.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        if !path.exists() {
            let name = format!(
                "edgeward-audit/{}",
                hex::encode(rand_core::RngCore::next_u64(&mut rand_core::OsRng).to_be_bytes())
            );
            let signer = NoteSigner::generate(&name).map_err(|e| err(&e))?;
            let text = Zeroizing::new(signer.to_private_string());
            edgeward_pki::store::write_atomic(path, text.as_bytes(), true).map_err(|e| err(&e))?;
        }
        Self::load(path)
    }

    /// Loads an existing key.
    pub fn load(path: &Path) -> Result<Self, String> {
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| err(&e))?);
        let signer = NoteSigner::parse(&text).map_err(|e| err(&e))?;
        Ok(AuditSigner { signer })
    }

    /// The verifier key (`<origin>+<hash>+<key>`), what auditors pin.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// The signed checkpoint (a C2SP note) of the head `size`, `root`.
    pub fn checkpoint(&self, size: u64, root: Hash) -> Result<String, NoteError> {
        let cp = Checkpoint {
            origin: self.signer.name().to_string(),
            size,
            root,
        };
        self.signer.sign(&cp.to_text())
    }
}

fn decode_hash(text: &str) -> Result<Hash, DbError> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(text, &mut h)
        .map_err(|_| DbError::Corrupt(format!("audit tree hash {text:?} is not 32 hex bytes")))?;
    Ok(h)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64, what: &str) -> Result<u64, DbError> {
    u64::try_from(v).map_err(|_| DbError::Corrupt(format!("negative {what} {v}")))
}

/// The stored subtrees `ids`, read in one query (through a transaction or the pool).
async fn nodes<'e, E>(exec: E, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>, DbError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let conditions: Vec<String> = (0..ids.len())
        .map(|i| format!("(level = ${} AND idx = ${})", 2 * i + 1, 2 * i + 2))
        .collect();
    let sql = format!(
        "SELECT level, idx, hash FROM audit_tree WHERE {}",
        conditions.join(" OR ")
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(i64::from(id.level)).bind(to_i64(id.index));
    }
    let mut out = HashMap::new();
    for row in query.fetch_all(exec).await? {
        let level: i64 = row.try_get("level")?;
        let index: i64 = row.try_get("idx")?;
        let hash: String = row.try_get("hash")?;
        let id = NodeId {
            level: u32::try_from(level)
                .map_err(|_| DbError::Corrupt(format!("audit tree level {level}")))?,
            index: to_u64(index, "audit tree index")?,
        };
        out.insert(id, decode_hash(&hash)?);
    }
    Ok(out)
}

/// Appends the entry `audit_id` (already inserted in `tx`) as the next leaf: takes the head
/// row, reads the frontier, writes the new subtrees and the new head. Returns the leaf's
/// index.
async fn append_leaf(
    tx: &mut Transaction<'static, Any>,
    audit_id: i64,
    mut entry: Entry,
) -> Result<u64, DbError> {
    // Taking the head row first serializes appenders (a row lock on PostgreSQL, the write
    // lock on SQLite) before anything is read.
    let size: i64 =
        sqlx::query("UPDATE audit_head SET size = size + 1 WHERE id = 1 RETURNING size")
            .fetch_one(&mut **tx)
            .await?
            .try_get("size")?;
    let index = to_u64(size, "audit tree size")?.saturating_sub(1);
    let peak_ids = Frontier::peak_ids(index);
    let stored = nodes(&mut **tx, &peak_ids).await?;
    let peaks = peak_ids
        .iter()
        .map(|id| {
            stored.get(id).copied().ok_or_else(|| {
                DbError::Corrupt(format!("the audit tree lacks node {id:?} of its frontier"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut tree = Frontier::from_peaks(index, peaks).ok_or_else(|| {
        DbError::Corrupt("the audit tree's frontier does not fit its size".into())
    })?;
    entry.index = index;
    for (id, hash) in tree.push(entry.leaf_hash()) {
        sqlx::query("INSERT INTO audit_tree (level, idx, hash, audit_id) VALUES ($1, $2, $3, $4)")
            .bind(i64::from(id.level))
            .bind(to_i64(id.index))
            .bind(hex::encode(hash))
            .bind((id.level == 0).then_some(audit_id))
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("UPDATE audit_head SET root = $1 WHERE id = 1")
        .bind(hex::encode(tree.root()))
        .execute(&mut **tx)
        .await?;
    Ok(index)
}

/// Inserts an audit entry and appends it to the tree, in one transaction.
pub async fn append(pool: &AnyPool, entry: Entry) -> Result<u64, DbError> {
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO audit (at, actor, action, device_id, detail, count) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(entry.at)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.device_id)
    .bind(&entry.detail)
    .bind(to_i64(entry.count))
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    let index = append_leaf(&mut tx, id, entry).await?;
    tx.commit().await?;
    Ok(index)
}

fn entry_from(row: &sqlx::any::AnyRow) -> Result<Entry, DbError> {
    Ok(Entry {
        index: to_u64(row.try_get("idx")?, "audit entry index")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        device_id: row.try_get("device_id")?,
        detail: row.try_get("detail")?,
        count: to_u64(row.try_get("count")?, "audit entry count")?,
    })
}

/// Appends the audit rows written before the tree existed (a database from before this
/// version), oldest first. Idempotent: a row another replica sealed first is skipped.
pub async fn seal_untreed(db: &Db) -> Result<u64, DbError> {
    let rows = sqlx::query(
        "SELECT id, CAST(0 AS BIGINT) AS idx, at, actor, action, device_id, detail, count FROM audit WHERE id NOT IN (SELECT audit_id FROM audit_tree WHERE audit_id IS NOT NULL) ORDER BY id",
    )
    .fetch_all(db.pool())
    .await?;
    let mut sealed = 0;
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        let entry = entry_from(row)?;
        let mut tx = db.pool().begin().await?;
        match append_leaf(&mut tx, id, entry).await {
            Ok(_) => {
                tx.commit().await?;
                sealed += 1;
            }
            Err(DbError::Sqlx(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                tx.rollback().await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(sealed)
}

/// The tree head: size and root.
pub async fn head(db: &Db) -> Result<(u64, Hash), DbError> {
    let row = sqlx::query("SELECT size, root FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await?;
    let size = to_u64(row.try_get("size")?, "audit tree size")?;
    let root: String = row.try_get("root")?;
    Ok((size, decode_hash(&root)?))
}

/// Entries `start..end` in log order (at most [`MAX_ENTRIES_PER_REQUEST`]).
pub async fn entries(db: &Db, start: u64, end: u64) -> Result<Vec<Entry>, DbError> {
    let end = end.min(start.saturating_add(MAX_ENTRIES_PER_REQUEST));
    let rows = sqlx::query(
        "SELECT t.idx AS idx, a.at AS at, a.actor AS actor, a.action AS action, a.device_id AS device_id, a.detail AS detail, a.count AS count FROM audit_tree t JOIN audit a ON a.id = t.audit_id WHERE t.level = 0 AND t.idx >= $1 AND t.idx < $2 ORDER BY t.idx",
    )
    .bind(to_i64(start))
    .bind(to_i64(end))
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(entry_from).collect()
}

/// Runs `compute` over the stored subtrees it needs (read in one query); `None` when it
/// has no answer (a size or index out of range).
async fn with_nodes<T>(
    db: &Db,
    compute: impl Fn(&mut dyn FnMut(NodeId) -> Hash) -> Option<T>,
) -> Result<Option<T>, DbError> {
    let ids = merkle::nodes_needed(|node| {
        compute(node);
    });
    let stored = nodes(db.pool(), &ids).await?;
    let mut missing = None;
    let result = compute(&mut |id| {
        stored.get(&id).copied().unwrap_or_else(|| {
            missing = Some(id);
            [0; 32]
        })
    });
    match missing {
        Some(id) => Err(DbError::Corrupt(format!(
            "the audit tree lacks node {id:?}"
        ))),
        None => Ok(result),
    }
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves (`size` at most the
/// head's).
pub async fn inclusion_proof(db: &Db, index: u64, size: u64) -> Result<Option<Vec<Hash>>, DbError> {
    with_nodes(db, |node| merkle::inclusion_proof_from(index, size, node)).await
}

/// The consistency proof between the trees of `old_size` and `size` leaves.
pub async fn consistency_proof(
    db: &Db,
    old_size: u64,
    size: u64,
) -> Result<Option<Vec<Hash>>, DbError> {
    with_nodes(db, |node| {
        merkle::consistency_proof_from(old_size, size, node)
    })
    .await
}
