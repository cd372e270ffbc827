//! `edgeward audit verify` against a real edgeward-server on loopback (SQLite, and a fresh
//! PostgreSQL database): a growing log verifies and its state file follows it; then the
//! database is tampered with directly through the real `sqlite3` and `psql` clients (the
//! append-only triggers removed first, as an attacker holding the database would) and an
//! edited, dropped and reordered entry and a deleted tail are each refused (exit 1) with the
//! error that names them.

use std::{path::PathBuf, process::Command};

use crate::common::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Db {
    Sqlite,
    Postgres,
}

struct Env {
    _running: edgeward_server::Running,
    data: tempfile::TempDir,
    server: String,
    key: String,
    db: Db,
    url: String,
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn psql(url: &str, sql: &str) -> String {
    ok(Command::new("psql").args(["-v", "ON_ERROR_STOP=1", "-qtA", url, "-c", sql]))
}

async fn start(db: Db) -> Env {
    let data = tempfile::tempdir().expect("tmp");
    let url = match db {
        Db::Sqlite => format!("sqlite://{}", data.path().join("registry.db").display()),
        Db::Postgres => {
            let name = format!("edgeward_cli_audit_{}", hex::encode(bytes(6, rand_seed())));
            psql(PG_ADMIN, &format!("CREATE DATABASE {name}"));
            format!("postgres://postgres@127.0.0.1:5432/{name}")
        }
    };
    let running = edgeward_server::start(edgeward_server::Config {
        data_dir: data.path().to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        admin_listen: ([127, 0, 0, 1], 0).into(),
        enroll_listen: ([127, 0, 0, 1], 0).into(),
        database_url: Some(url.clone()),
        ..Default::default()
    })
    .await
    .expect("server");
    let key = running.app.audit_signer.verifier().to_string();
    Env {
        server: format!("https://localhost:{}", running.admin_addr.port()),
        _running: running,
        data,
        key,
        db,
        url,
    }
}

fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id())
}

impl Env {
    fn state(&self) -> PathBuf {
        // Outside the server's data directory, as an auditor would keep it.
        self.data.path().with_extension("audit-state.json")
    }

    async fn edgeward(&self, args: Vec<String>, code: i32) -> String {
        let (server, ca, token) = (
            self.server.clone(),
            self.data.path().join("server-ca.pem"),
            self.data.path().join("admin-token"),
        );
        tokio::task::spawn_blocking(move || {
            let mut c = edgeward();
            c.args(&args)
                .env("EDGEWARD_SERVER", server)
                .env("EDGEWARD_SERVER_CA", ca)
                .env("EDGEWARD_ADMIN_TOKEN_FILE", token);
            // Stdout either way: with --json a failure is a JSON object there too.
            let out = run(&mut c);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{c:?}:\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .await
        .expect("join")
    }

    async fn add_devices(&self, prefix: &str, n: usize) {
        for i in 0..n {
            self.edgeward(
                vec![
                    "fleet".into(),
                    "add-device".into(),
                    format!("{prefix}-{i}"),
                    "--hardware".into(),
                    "cam".into(),
                ],
                0,
            )
            .await;
        }
    }

    async fn verify(&self, code: i32) -> String {
        let args = vec![
            "--json".into(),
            "audit".into(),
            "verify".into(),
            "--key".into(),
            self.key.clone(),
            "--state".into(),
            self.state().display().to_string(),
        ];
        self.edgeward(args, code).await
    }

    /// Runs `sql` on the server's database with the audit triggers removed.
    fn tamper(&self, sql: &str) {
        match self.db {
            Db::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                let drop = "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; DROP TRIGGER IF EXISTS audit_tree_no_update; DROP TRIGGER IF EXISTS audit_tree_no_delete; DROP TRIGGER IF EXISTS audit_head_only_grows;";
                ok(Command::new("sqlite3")
                    .arg(path)
                    .arg(format!("{drop} {sql}")));
            }
            Db::Postgres => {
                psql(
                    &self.url,
                    &format!(
                        "ALTER TABLE audit DISABLE TRIGGER USER; ALTER TABLE audit_tree DISABLE TRIGGER USER; ALTER TABLE audit_head DISABLE TRIGGER USER; {sql}"
                    ),
                );
            }
        }
    }
}

fn audit_error(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["ok"], false, "{v}");
    v["audit_error"].as_str().unwrap_or_default().to_string()
}

fn size(out: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    v["size"].as_u64().expect("size")
}

/// SQL naming the `audit` row of leaf `i`.
fn row(i: u64) -> String {
    format!("(SELECT audit_id FROM audit_tree WHERE level = 0 AND idx = {i})")
}

async fn grown_and_checked(db: Db) -> (Env, u64) {
    let env = start(db).await;
    env.add_devices("cam", 4).await;
    let first = size(&env.verify(0).await);
    env.add_devices("more", 3).await;
    let out = env.verify(0).await;
    assert_eq!(size(&out), first + 3, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["previous_size"], first, "{v}");
    (env, first + 3)
}

async fn edit_drop_reorder_truncate(db: Db) {
    let (env, _) = grown_and_checked(db).await;
    env.tamper(&format!(
        "UPDATE audit SET detail = 'nothing to see' WHERE id = {};",
        row(2)
    ));
    assert_eq!(audit_error(&env.verify(1).await), "root");

    let (env, _) = grown_and_checked(db).await;
    env.tamper(&format!("DELETE FROM audit WHERE id = {};", row(3)));
    assert_eq!(audit_error(&env.verify(1).await), "sequence");

    let (env, _) = grown_and_checked(db).await;
    let (a, b) = (row(1), row(4));
    env.tamper(&format!(
        "UPDATE audit SET id = -1 WHERE id = {a}; UPDATE audit SET id = {a} WHERE id = {b}; UPDATE audit SET id = {b} WHERE id = -1;"
    ));
    assert_eq!(audit_error(&env.verify(1).await), "root");

    // The tail: cut the log back to the head of an earlier check (its size and root, which
    // anyone reading the log had), so the server signs a shorter log that is whole.
    let env = start(db).await;
    env.add_devices("cam", 4).await;
    let out = env.verify(0).await;
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let (keep, root) = (
        v["size"].as_u64().expect("size"),
        v["root"].as_str().expect("root").to_string(),
    );
    env.add_devices("more", 5).await;
    env.verify(0).await;
    let root_hex = hex::encode(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, root).expect("b64"),
    );
    env.tamper(&format!(
        "DELETE FROM audit WHERE id IN (SELECT audit_id FROM audit_tree WHERE level = 0 AND idx >= {keep}); \
         DELETE FROM audit_tree WHERE (idx + 1) * (CAST(1 AS BIGINT) << CAST(level AS INTEGER)) > {keep}; \
         UPDATE audit_head SET size = {keep}, root = '{root_hex}' WHERE id = 1;"
    ));
    let out = env.verify(1).await;
    assert_eq!(audit_error(&out), "truncated", "{out}");
    assert!(out.contains("its tail was deleted"), "{out}");
    // A verifier without the state would have been fooled: the state is what catches it.
    std::fs::remove_file(env.state()).expect("rm state");
    assert_eq!(size(&env.verify(0).await), keep);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_catches_tampering_on_sqlite() {
    edit_drop_reorder_truncate(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_catches_tampering_on_postgres() {
    edit_drop_reorder_truncate(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_refuses_a_checkpoint_under_another_key() {
    let env = start(Db::Sqlite).await;
    env.add_devices("cam", 2).await;
    let other = edgeward_audit::note::NoteSigner::generate("edgeward-audit/other")
        .expect("key")
        .verifier()
        .to_string();
    let out = env
        .edgeward(
            vec![
                "--json".into(),
                "audit".into(),
                "verify".into(),
                "--key".into(),
                other,
                "--state".into(),
                env.state().display().to_string(),
            ],
            1,
        )
        .await;
    assert_eq!(audit_error(&out), "signature", "{out}");
    assert!(!env.state().exists());
}
