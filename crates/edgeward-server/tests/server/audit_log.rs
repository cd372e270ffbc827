//! The tamper-evident audit log on a real server: its checkpoints verify under the pinned
//! key and its proofs verify; then the database is tampered with directly (triggers
//! dropped, as an attacker with the database would) and an edited, dropped and reordered
//! entry and a deleted tail are each caught by the verifier, with the error saying which.

use edgeward_audit::{
    checkpoint::Checkpoint,
    log::{AuditError, Entry, LogVerifier},
    merkle,
    note::NoteVerifier,
    proof::{ConsistencyProof, InclusionProof},
};
use sqlx::AnyPool;

use crate::common::*;

/// A server with `n` audit entries (one per registered device).
async fn server_with_entries(backend: Backend, n: usize) -> Server {
    let s = start(backend).await;
    for i in 0..n {
        s.register(&device_id(&format!("audited{i}")), "cam").await;
    }
    s
}

async fn get_text(s: &Server, path: &str) -> (u16, String) {
    let r = s
        .admin
        .get(s.admin_url(path))
        .bearer_auth(s.admin_key.trim())
        .send()
        .await
        .expect("call");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn checkpoint_note(s: &Server) -> String {
    let (status, note) = get_text(s, "/v1/admin/audit/checkpoint").await;
    assert_eq!(status, 200, "{note}");
    note
}

async fn all_entries(s: &Server, size: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let start = out.len();
        let (status, v) = s
            .admin_get(&format!("/v1/admin/audit/entries?start={start}&end={size}"))
            .await;
        assert_eq!(status, 200, "{v}");
        let page: Vec<Entry> = serde_json::from_value(v["entries"].clone()).expect("entries");
        if page.is_empty() {
            break;
        }
        out.extend(page);
    }
    out
}

/// What `edgeward audit verify` does: the signed checkpoint, every entry it covers, and
/// the last checkpoint trusted.
async fn verify(
    s: &Server,
    key: &NoteVerifier,
    trusted: Option<&Checkpoint>,
) -> Result<Checkpoint, AuditError> {
    let note = checkpoint_note(s).await;
    let mut v = LogVerifier::new(key, &note, trusted)?;
    for e in all_entries(s, v.checkpoint().size).await {
        v.push(&e)?;
    }
    v.finish()
}

fn key(s: &Server) -> NoteVerifier {
    s.running.app.audit_signer.verifier()
}

/// A connection to the server's database that bypasses the append-only triggers.
async fn tamper(s: &Server) -> AnyPool {
    let url = s.running.app.config.database_url();
    let pool = AnyPool::connect(&url).await.expect("connect");
    if url.starts_with("sqlite:") {
        for t in [
            "audit_no_update",
            "audit_no_delete",
            "audit_tree_no_update",
            "audit_tree_no_delete",
            "audit_head_only_grows",
        ] {
            sqlx::query(&format!("DROP TRIGGER {t}"))
                .execute(&pool)
                .await
                .expect("drop trigger");
        }
    } else {
        for t in ["audit", "audit_tree", "audit_head"] {
            sqlx::query(&format!("ALTER TABLE {t} DISABLE TRIGGER USER"))
                .execute(&pool)
                .await
                .expect("disable triggers");
        }
    }
    pool
}

/// The `audit` row id of leaf `index`.
async fn row_of(pool: &AnyPool, index: i64) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT audit_id FROM audit_tree WHERE level = 0 AND idx = $1")
        .bind(index)
        .fetch_one(pool)
        .await
        .expect("leaf")
        .get("audit_id")
}

both_backends!(checkpoints_and_proofs_verify, |backend| async move {
    let s = server_with_entries(backend, 5).await;
    let key = key(&s);
    let first = verify(&s, &key, None)
        .await
        .expect("an intact log verifies");
    assert!(first.size >= 5, "{first:?}");
    for i in 5..13 {
        s.register(&device_id(&format!("more{i}")), "cam").await;
    }
    let second = verify(&s, &key, Some(&first))
        .await
        .expect("the grown log extends the first checkpoint");
    assert_eq!(second.size, first.size + 8);

    let entries = all_entries(&s, second.size).await;
    for e in &entries {
        let (status, v) = s
            .admin_get(&format!(
                "/v1/admin/audit/proof/inclusion?index={}&size={}",
                e.index, second.size
            ))
            .await;
        assert_eq!(status, 200, "{v}");
        let p = InclusionProof::parse(v.to_string().as_bytes()).expect("proof");
        assert!(merkle::verify_inclusion(
            e.index,
            second.size,
            &e.leaf_hash(),
            &p.proof,
            &second.root
        ));
        // The proof does not prove another entry there.
        let other = &entries[(e.index as usize + 1) % entries.len()];
        assert!(!merkle::verify_inclusion(
            e.index,
            second.size,
            &other.leaf_hash(),
            &p.proof,
            &second.root
        ));
    }
    let (status, v) = s
        .admin_get(&format!(
            "/v1/admin/audit/proof/consistency?old_size={}&size={}",
            first.size, second.size
        ))
        .await;
    assert_eq!(status, 200, "{v}");
    let p = ConsistencyProof::parse(v.to_string().as_bytes()).expect("proof");
    assert!(merkle::verify_consistency(
        first.size,
        second.size,
        &p.proof,
        &first.root,
        &second.root
    ));
    // Sizes past the head are refused, not proved.
    let (status, _) = s
        .admin_get(&format!(
            "/v1/admin/audit/proof/consistency?old_size=1&size={}",
            second.size + 1
        ))
        .await;
    assert_eq!(status, 400);
    // Without an admin key there is nothing to read.
    let r = s
        .admin
        .get(s.admin_url("/v1/admin/audit/checkpoint"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status().as_u16(), 401);
});

both_backends!(an_edited_entry_is_caught, |backend| async move {
    let s = server_with_entries(backend, 6).await;
    let size = verify(&s, &key(&s), None).await.expect("intact").size;
    let pool = tamper(&s).await;
    let id = row_of(&pool, 3).await;
    sqlx::query("UPDATE audit SET detail = 'nothing happened' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("edit");
    assert_eq!(
        verify(&s, &key(&s), None).await,
        Err(AuditError::Root { size })
    );
});

both_backends!(a_dropped_entry_is_caught, |backend| async move {
    let s = server_with_entries(backend, 6).await;
    verify(&s, &key(&s), None).await.expect("intact");
    let pool = tamper(&s).await;
    let id = row_of(&pool, 2).await;
    sqlx::query("DELETE FROM audit WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("drop");
    assert_eq!(
        verify(&s, &key(&s), None).await,
        Err(AuditError::Sequence {
            position: 2,
            index: 3
        })
    );
});

both_backends!(reordered_entries_are_caught, |backend| async move {
    let s = server_with_entries(backend, 6).await;
    let size = verify(&s, &key(&s), None).await.expect("intact").size;
    let pool = tamper(&s).await;
    let (a, b) = (row_of(&pool, 1).await, row_of(&pool, 4).await);
    // Swap the two rows' contents (what a reordering of the table amounts to).
    for (from, to) in [(a, -1), (b, a), (-1, b)] {
        sqlx::query("UPDATE audit SET id = $2 WHERE id = $1")
            .bind(from)
            .bind(to)
            .execute(&pool)
            .await
            .expect("reorder");
    }
    assert_eq!(
        verify(&s, &key(&s), None).await,
        Err(AuditError::Root { size })
    );
});

both_backends!(a_deleted_tail_is_caught, |backend| async move {
    let s = server_with_entries(backend, 9).await;
    let key = key(&s);
    let trusted = verify(&s, &key, None).await.expect("intact");
    // The attacker deletes the last four entries and rebuilds a consistent shorter tree,
    // so the server signs a checkpoint that verifies on its own.
    let keep = 5u64;
    let entries = all_entries(&s, trusted.size).await;
    let pool = tamper(&s).await;
    for e in &entries[keep as usize..] {
        let id = row_of(&pool, e.index as i64).await;
        sqlx::query("DELETE FROM audit WHERE id = $1")
            .bind(id)
            .execute(&pool)
            .await
            .expect("delete entry");
    }
    let rows = {
        use sqlx::Row;
        sqlx::query("SELECT level, idx FROM audit_tree")
            .fetch_all(&pool)
            .await
            .expect("nodes")
            .iter()
            .map(|r| (r.get::<i64, _>("level"), r.get::<i64, _>("idx")))
            .collect::<Vec<_>>()
    };
    for (level, idx) in rows {
        if ((idx + 1) << level) as u64 > keep {
            sqlx::query("DELETE FROM audit_tree WHERE level = $1 AND idx = $2")
                .bind(level)
                .bind(idx)
                .execute(&pool)
                .await
                .expect("delete node");
        }
    }
    let leaves: Vec<merkle::Hash> = entries[..keep as usize]
        .iter()
        .map(Entry::leaf_hash)
        .collect();
    sqlx::query("UPDATE audit_head SET size = $1, root = $2 WHERE id = 1")
        .bind(keep as i64)
        .bind(hex::encode(merkle::root(&leaves)))
        .execute(&pool)
        .await
        .expect("rewind head");
    // Without the trusted checkpoint the shorter log looks whole; with it, it is caught.
    assert_eq!(verify(&s, &key, None).await.map(|c| c.size), Ok(keep));
    assert_eq!(
        verify(&s, &key, Some(&trusted)).await,
        Err(AuditError::Truncated {
            trusted: trusted.size,
            size: keep
        })
    );
    // And appending again after the cut does not hide it: the new log does not extend the
    // trusted one.
    for i in 0..6 {
        s.register(&device_id(&format!("after{i}")), "cam").await;
    }
    assert_eq!(
        verify(&s, &key, Some(&trusted)).await,
        Err(AuditError::Forked {
            trusted: trusted.size
        })
    );
});

/// `edgeward-server audit-key` (the real binary) prints the verifier key of the running
/// server's log, the one its checkpoints verify under.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_key_command_prints_the_verifier_key() {
    let s = server_with_entries(Backend::Sqlite, 1).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeward-server"))
        .arg("--data-dir")
        .arg(s.dir.path())
        .arg("audit-key")
        .output()
        .expect("run edgeward-server");
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).expect("utf8");
    let pinned = NoteVerifier::parse(printed.trim()).expect("a verifier key");
    assert_eq!(pinned, key(&s));
    verify(&s, &pinned, None).await.expect("verifies under it");
    let missing = s.dir.path().join("nowhere");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeward-server"))
        .arg("--data-dir")
        .arg(&missing)
        .arg("audit-key")
        .output()
        .expect("run edgeward-server");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!missing.exists());
}
