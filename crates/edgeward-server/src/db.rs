//! The registry database: SQLite (WAL) on the embedded default, PostgreSQL at scale, through
//! one sqlx `Any` pool and portable SQL (`$n` placeholders, `BIGINT`/`TEXT` columns, which
//! both accept). Each backend has its own migrations under `migrations/`.

use std::{fmt, str::FromStr};

use sqlx::{any::AnyPoolOptions, AnyPool, Row};

/// A database failure (connection, query or migration); details are logged, not sent.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// From sqlx.
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// From a migration.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A URL that names neither SQLite nor PostgreSQL.
    #[error("unsupported database URL {0:?} (use sqlite://… or postgres://…)")]
    Url(String),
    /// From the SQLite telemetry writer's connection.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The telemetry writer's thread could not be started.
    #[error("telemetry writer thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The database file could not be created private (0600).
    #[error("database file: {0}")]
    Files(String),
    /// The row to insert exists already.
    #[error("{0} already exists")]
    Exists(String),
    /// Stored data that cannot be what this server wrote (e.g. a damaged audit tree).
    #[error("database holds corrupt data: {0}")]
    Corrupt(String),
}

/// Which SQL backend a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (WAL).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A device's registry status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    /// Registered, not enrolled yet.
    Pending,
    /// Enrolled and allowed to call the device API.
    Active,
    /// Cut off except for command poll and forensic upload.
    Quarantined,
    /// Cut off for good; its certificate is on the CRL.
    Revoked,
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Active => "active",
            DeviceStatus::Quarantined => "quarantined",
            DeviceStatus::Revoked => "revoked",
        })
    }
}

impl FromStr for DeviceStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => DeviceStatus::Pending,
            "active" => DeviceStatus::Active,
            "quarantined" => DeviceStatus::Quarantined,
            "revoked" => DeviceStatus::Revoked,
            other => return Err(format!("unknown device status {other:?}")),
        })
    }
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    /// Its identifier (the CN of its certificate).
    pub id: String,
    /// Its hardware class (selects its rate limit).
    pub hardware_class: String,
    /// Its status.
    pub status: DeviceStatus,
    /// Serial (hex) of its current certificate, once enrolled.
    pub cert_serial: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// An admin credential's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads devices and the audit log.
    Viewer,
    /// Also registers devices, quarantines and releases them, queues commands.
    Operator,
    /// Also revokes devices and manages admin keys.
    Admin,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "viewer" => Role::Viewer,
            "operator" => Role::Operator,
            "admin" => Role::Admin,
            other => return Err(format!("unknown role {other:?}")),
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        })
    }
}

/// A change of a device's status, made by [`Db::transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// pending → active, with the certificate issued at enrollment.
    Enroll {
        /// The new certificate's serial (hex).
        serial: &'a str,
    },
    /// active or quarantined → active, with the certificate issued to a new key at a
    /// re-provisioning; the current certificate is revoked for good.
    Rekey {
        /// The new certificate's serial (hex).
        serial: &'a str,
    },
    /// active → quarantined.
    Quarantine,
    /// quarantined → active.
    Release,
    /// pending, active or quarantined → revoked; the current certificate is revoked for good.
    Revoke,
    /// active, quarantined or revoked → pending, to enroll again with a new token (earlier
    /// tokens are deleted); the current certificate, if any, is revoked for good.
    Reprovision {
        /// SHA-256 (hex) of the new enrollment token.
        token_sha256: &'a str,
        /// When the new token expires (Unix seconds).
        expires_at: i64,
    },
}

impl Change<'_> {
    /// The statuses the change may start from.
    pub fn allowed_from(&self) -> &'static [DeviceStatus] {
        use DeviceStatus::*;
        match self {
            Change::Enroll { .. } => &[Pending],
            Change::Rekey { .. } => &[Active, Quarantined],
            Change::Quarantine => &[Active],
            Change::Release => &[Quarantined],
            Change::Revoke => &[Pending, Active, Quarantined],
            Change::Reprovision { .. } => &[Active, Quarantined, Revoked],
        }
    }

    /// The status it leads to.
    pub fn to(&self) -> DeviceStatus {
        match self {
            Change::Enroll { .. } | Change::Rekey { .. } | Change::Release => DeviceStatus::Active,
            Change::Quarantine => DeviceStatus::Quarantined,
            Change::Revoke => DeviceStatus::Revoked,
            Change::Reprovision { .. } => DeviceStatus::Pending,
        }
    }

    /// Its name in the audit log (`device.<name>`) and in refusals.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Enroll { .. } => "enroll",
            Change::Rekey { .. } => "rekey",
            Change::Quarantine => "quarantine",
            Change::Release => "release",
            Change::Revoke => "revoke",
            Change::Reprovision { .. } => "reprovision",
        }
    }
}

/// What [`Db::transition`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The change was committed.
    Done {
        /// The status it changed from.
        from: DeviceStatus,
        /// The certificate it revoked (revoke and reprovision of an enrolled device).
        revoked_serial: Option<String>,
    },
    /// The device's status does not allow the change.
    Refused(DeviceStatus),
    /// No such device.
    NoDevice,
}

/// Why an enrollment token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No such token (forged or mistyped).
    Unknown,
    /// Used before.
    Reused,
    /// Past its expiry.
    Expired,
}

/// One audit-log entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who: `admin:<name>`, `device:<id>`, `enrollment`, `server`.
    pub actor: String,
    /// What, e.g. `device.add`, `auth.refused`.
    pub action: String,
    /// The device concerned, if any.
    pub device_id: Option<String>,
    /// Details (never secrets).
    pub detail: String,
    /// How many events the entry stands for (repeated refusals are counted into one).
    pub count: i64,
}

/// Filters of the audit API; every one given must match exactly.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Who.
    pub actor: Option<String>,
    /// The device concerned.
    pub device: Option<String>,
    /// What.
    pub action: Option<String>,
}

/// Most entries of one page of the audit log.
pub const MAX_AUDIT_PAGE: i64 = 1000;

/// A command queued for a device.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Command {
    /// Its id.
    pub id: i64,
    /// Its kind, e.g. `reboot`, `collect-forensics`.
    pub kind: String,
    /// Its JSON arguments.
    pub body: serde_json::Value,
    /// `pending`, `sent`, `done` or `failed`.
    pub status: String,
}

/// A command result whose signature verified, as [`Db::command_result`] stores it.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedResult<'a> {
    /// The command.
    pub id: i64,
    /// Whether it succeeded.
    pub ok: bool,
    /// The exact signed payload (JSON text).
    pub payload: &'a str,
    /// The signature, base64.
    pub signature: &'a str,
    /// SHA-256 of the payload, hex.
    pub sha256: &'a str,
}

/// A command's state and result, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommandOutcome {
    /// Its kind.
    pub kind: String,
    /// `pending`, `sent`, `done` or `failed`.
    pub status: String,
    /// The signed result payload, once answered.
    pub result: Option<String>,
    /// SHA-256 of the result payload, hex.
    pub result_sha256: Option<String>,
    /// Whether the result's signature verified under the device's certificate key.
    pub verified: bool,
}

/// The registry.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    url: String,
}

/// SQLite connection settings: every commit synced to disk before it is acknowledged
/// (`synchronous = FULL`: with WAL's `NORMAL` a commit survives a crash of the process but
/// not a power loss, and registry transitions, the audit log and acknowledged telemetry must
/// survive both), memory-mapped reads and a 16 MiB page cache (without them every insert
/// re-reads index pages through read(2) system calls).
pub(crate) const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA mmap_size = 268435456; PRAGMA cache_size = -16384;";

fn device_from(row: &sqlx::any::AnyRow) -> Result<Device, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Device {
        id: row.try_get("id")?,
        hardware_class: row.try_get("hardware_class")?,
        status: status
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        cert_serial: row.try_get("cert_serial")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Db {
    /// Connects and runs the backend's migrations.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(DbError::Url(url.to_string()));
        };
        if backend == Backend::Sqlite {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
            let file = options.get_filename();
            if file != std::path::Path::new(":memory:") {
                crate::data_dir::private_sqlite_file(file).map_err(DbError::Files)?;
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        use sqlx::Executor;
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        } else {
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
        }
        Ok(Db {
            pool,
            backend,
            url: url.to_string(),
        })
    }

    /// The URL it was opened with (the telemetry writer opens its own connection).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for the modules that keep tables of their own.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Registers a pending device.
    pub async fn add_device(&self, id: &str, class: &str, now: i64) -> Result<(), DbError> {
        let r = sqlx::query(
            "INSERT INTO devices (id, hardware_class, status, created_at, updated_at) VALUES ($1, $2, 'pending', $3, $3)",
        )
        .bind(id)
        .bind(class)
        .bind(now)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(DbError::Exists(format!("device {id}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One device.
    pub async fn device(&self, id: &str) -> Result<Option<Device>, DbError> {
        let row = sqlx::query("SELECT * FROM devices WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(device_from).transpose()?)
    }

    /// Every device, by id.
    pub async fn devices(&self) -> Result<Vec<Device>, DbError> {
        let rows = sqlx::query("SELECT * FROM devices ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(device_from).collect::<Result<_, _>>()?)
    }

    /// Applies `change` to device `id` as one compare-and-set on its status: the device is
    /// read, the change checked against its status, and the write made only if the status is
    /// still the one read (`UPDATE … WHERE id = … AND status = …`), in one transaction with
    /// what goes with it (the revoked certificate recorded for good, a new enrollment token).
    /// If another transition got in between, it starts over from the new status; the change
    /// therefore happens whole, after every transition committed before it, or is refused.
    pub async fn transition(
        &self,
        id: &str,
        change: Change<'_>,
        now: i64,
    ) -> Result<Transition, DbError> {
        loop {
            let Some(device) = self.device(id).await? else {
                return Ok(Transition::NoDevice);
            };
            if !change.allowed_from().contains(&device.status) {
                return Ok(Transition::Refused(device.status));
            }
            // The compare covers the serial too: between the read and the write the device
            // could have been re-provisioned and enrolled again, back to the same status.
            let sql = match change {
                Change::Enroll { .. } | Change::Rekey { .. } => "UPDATE devices SET status = $1, updated_at = $2, cert_serial = $6 WHERE id = $3 AND status = $4 AND COALESCE(cert_serial, '') = $5",
                Change::Reprovision { .. } => "UPDATE devices SET status = $1, updated_at = $2, cert_serial = NULL WHERE id = $3 AND status = $4 AND COALESCE(cert_serial, '') = $5",
                _ => "UPDATE devices SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4 AND COALESCE(cert_serial, '') = $5",
            };
            let mut query = sqlx::query(sql)
                .bind(change.to().to_string())
                .bind(now)
                .bind(id)
                .bind(device.status.to_string())
                .bind(device.cert_serial.clone().unwrap_or_default());
            if let Change::Enroll { serial } | Change::Rekey { serial } = change {
                query = query.bind(serial);
            }
            let mut tx = self.pool.begin().await?;
            if query.execute(&mut *tx).await?.rows_affected() != 1 {
                // The device changed since it was read: read it again.
                tx.rollback().await?;
                continue;
            }
            let revoked_serial = match change {
                Change::Revoke | Change::Reprovision { .. } | Change::Rekey { .. } => {
                    device.cert_serial.clone()
                }
                _ => None,
            };
            if let Some(serial) = &revoked_serial {
                sqlx::query(
                    "INSERT INTO revoked_certs (serial, device_id, revoked_at) VALUES ($1, $2, $3) ON CONFLICT (serial) DO NOTHING",
                )
                .bind(serial)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            if let Change::Reprovision {
                token_sha256,
                expires_at,
            } = change
            {
                // Tokens made earlier for this device must not enroll it again.
                sqlx::query("DELETE FROM enrollment_tokens WHERE device_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO enrollment_tokens (token_sha256, device_id, expires_at) VALUES ($1, $2, $3)")
                    .bind(token_sha256)
                    .bind(id)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            return Ok(Transition::Done {
                from: device.status,
                revoked_serial,
            });
        }
    }

    /// The next number for the device CRL (it only rises, across restarts and replicas).
    pub async fn next_crl_number(&self) -> Result<u64, DbError> {
        let row =
            sqlx::query("UPDATE crl_number SET number = number + 1 WHERE id = 1 RETURNING number")
                .fetch_one(&self.pool)
                .await?;
        let n: i64 = row.try_get("number")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Stores an enrollment token (by its SHA-256 only).
    pub async fn add_enrollment_token(
        &self,
        token_sha256: &str,
        device: &str,
        expires_at: i64,
    ) -> Result<(), DbError> {
        sqlx::query("INSERT INTO enrollment_tokens (token_sha256, device_id, expires_at) VALUES ($1, $2, $3)")
            .bind(token_sha256)
            .bind(device)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Consumes an enrollment token atomically (single use): the device it was made for, or
    /// why it is refused.
    pub async fn consume_enrollment_token(
        &self,
        token_sha256: &str,
        now: i64,
    ) -> Result<Result<String, TokenRefusal>, DbError> {
        let row = sqlx::query(
            "UPDATE enrollment_tokens SET used_at = $1 WHERE token_sha256 = $2 AND used_at IS NULL AND expires_at > $1 RETURNING device_id",
        )
        .bind(now)
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(Ok(row.try_get("device_id")?));
        }
        let row = sqlx::query(
            "SELECT used_at, expires_at FROM enrollment_tokens WHERE token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Err(match row {
            None => TokenRefusal::Unknown,
            Some(r) if r.try_get::<Option<i64>, _>("used_at")?.is_some() => TokenRefusal::Reused,
            Some(_) => TokenRefusal::Expired,
        }))
    }

    /// Appends to the audit log an entry standing for `count` events, as the next leaf of
    /// its Merkle tree (see `audit_log`).
    pub async fn audit(
        &self,
        now: i64,
        actor: &str,
        action: &str,
        device: Option<&str>,
        detail: &str,
        count: i64,
    ) -> Result<(), DbError> {
        let entry = edgeward_audit::log::Entry {
            index: 0,
            at: now,
            actor: actor.to_string(),
            action: action.to_string(),
            device_id: device.map(str::to_string),
            detail: detail.to_string(),
            count: u64::try_from(count).unwrap_or(0),
        };
        crate::audit_log::append(&self.pool, entry).await?;
        Ok(())
    }

    /// A page of the audit log, newest first: at most `limit` entries older than `before`
    /// (an entry id; the newest when `None`) that match every filter given.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, DbError> {
        let mut conditions = Vec::new();
        let mut values: Vec<&str> = Vec::new();
        for (column, value) in [
            ("actor", &filter.actor),
            ("device_id", &filter.device),
            ("action", &filter.action),
        ] {
            if let Some(v) = value {
                values.push(v);
                conditions.push(format!("{column} = ${}", values.len()));
            }
        }
        if before.is_some() {
            conditions.push(format!("id < ${}", values.len() + 1));
        }
        let sql = format!(
            "SELECT id, at, actor, action, device_id, detail, count FROM audit {} ORDER BY id DESC LIMIT {}",
            if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            },
            limit.clamp(1, MAX_AUDIT_PAGE)
        );
        let mut query = sqlx::query(&sql);
        for v in values {
            query = query.bind(v);
        }
        if let Some(before) = before {
            query = query.bind(before);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    device_id: r.try_get("device_id")?,
                    detail: r.try_get("detail")?,
                    count: r.try_get("count")?,
                })
            })
            .collect()
    }

    /// Stores an admin key (by its SHA-256 only).
    pub async fn add_admin_key(
        &self,
        key_sha256: &str,
        name: &str,
        role: Role,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO admin_keys (key_sha256, name, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key_sha256)
        .bind(name)
        .bind(role.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The name and role of an admin key, by its SHA-256.
    pub async fn admin_key(&self, key_sha256: &str) -> Result<Option<(String, Role)>, DbError> {
        let row = sqlx::query("SELECT name, role FROM admin_keys WHERE key_sha256 = $1")
            .bind(key_sha256)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let role: String = r.try_get("role")?;
            Ok((
                r.try_get("name")?,
                role.parse()
                    .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            ))
        })
        .transpose()
    }

    /// How many telemetry batches a device has sent.
    pub async fn telemetry_count(&self, device: &str) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM telemetry WHERE device_id = $1")
            .bind(device)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Queues a command for a device.
    pub async fn add_command(
        &self,
        device: &str,
        kind: &str,
        body: &str,
        now: i64,
    ) -> Result<i64, DbError> {
        let row = sqlx::query(
            "INSERT INTO commands (device_id, created_at, kind, body, status, updated_at) VALUES ($1, $2, $3, $4, 'pending', $2) RETURNING id",
        )
        .bind(device)
        .bind(now)
        .bind(kind)
        .bind(body)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The device's pending commands, marked as sent.
    pub async fn take_commands(&self, device: &str, now: i64) -> Result<Vec<Command>, DbError> {
        let rows = sqlx::query(
            "UPDATE commands SET status = 'sent', updated_at = $1 WHERE device_id = $2 AND status = 'pending' RETURNING id, kind, body, status",
        )
        .bind(now)
        .bind(device)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<Command> = rows
            .iter()
            .map(|r| {
                let body: String = r.try_get("body")?;
                Ok(Command {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                    status: r.try_get("status")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// Records a command's verified result: the exact payload the device signed, its
    /// signature (base64) and the payload's SHA-256 (hex); false if the device has no such
    /// sent command.
    pub async fn command_result(
        &self,
        device: &str,
        r: &VerifiedResult<'_>,
        now: i64,
    ) -> Result<bool, DbError> {
        let done = sqlx::query(
            "UPDATE commands SET status = $1, result = $2, result_signature = $3, result_sha256 = $4, verified = 1, updated_at = $5 WHERE id = $6 AND device_id = $7 AND status = 'sent'",
        )
        .bind(if r.ok { "done" } else { "failed" })
        .bind(r.payload)
        .bind(r.signature)
        .bind(r.sha256)
        .bind(now)
        .bind(r.id)
        .bind(device)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A command's stored result: (status, result payload, SHA-256, verified).
    pub async fn command_outcome(
        &self,
        device: &str,
        id: i64,
    ) -> Result<Option<CommandOutcome>, DbError> {
        let row = sqlx::query(
            "SELECT kind, status, result, result_sha256, verified FROM commands WHERE id = $1 AND device_id = $2",
        )
        .bind(id)
        .bind(device)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(CommandOutcome {
                kind: r.try_get("kind")?,
                status: r.try_get("status")?,
                result: r.try_get("result")?,
                result_sha256: r.try_get("result_sha256")?,
                verified: r.try_get::<i64, _>("verified")? != 0,
            })
        })
        .transpose()
    }

    /// Records a certificate issued to a device (to verify what the device signs).
    pub async fn add_device_cert(
        &self,
        serial: &str,
        device: &str,
        cert_pem: &str,
        now: i64,
    ) -> Result<(), DbError> {
        sqlx::query("INSERT INTO device_certs (serial, device_id, cert_pem, issued_at) VALUES ($1, $2, $3, $4)")
            .bind(serial)
            .bind(device)
            .bind(cert_pem)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The device's current certificate (PEM), if it is enrolled and the certificate known.
    pub async fn current_cert(&self, device: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query(
            "SELECT c.cert_pem AS pem FROM devices d JOIN device_certs c ON c.serial = d.cert_serial AND c.device_id = d.id WHERE d.id = $1",
        )
        .bind(device)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("pem")).transpose()?)
    }

    /// Stores an attestation or forensic upload.
    pub async fn insert_upload(
        &self,
        device: &str,
        kind: &str,
        sha256: &str,
        body: &str,
        now: i64,
    ) -> Result<i64, DbError> {
        let row = sqlx::query(
            "INSERT INTO uploads (device_id, kind, received_at, sha256, body) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(device)
        .bind(kind)
        .bind(now)
        .bind(sha256)
        .bind(body)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Every revoked certificate: its serial (hex) and its device.
    pub async fn revocations(&self) -> Result<Vec<(String, String)>, DbError> {
        let rows = sqlx::query("SELECT serial, device_id FROM revoked_certs")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("serial")?, r.try_get("device_id")?)))
            .collect()
    }

    /// Asks every replica to close `device`'s live connections (containment's
    /// `drop_sessions`), and forgets requests older than an hour (every live replica has
    /// followed them long since).
    pub async fn record_session_drop(
        &self,
        device: &str,
        origin: &str,
        now_ms: i64,
    ) -> Result<(), DbError> {
        sqlx::query("INSERT INTO session_drops (device_id, origin, at_ms) VALUES ($1, $2, $3)")
            .bind(device)
            .bind(origin)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM session_drops WHERE at_ms < $1")
            .bind(now_ms.saturating_sub(3_600_000))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The session drops recorded after the one numbered `after`, oldest first: (number,
    /// device, the recording process's instance name).
    pub async fn session_drops_after(
        &self,
        after: i64,
    ) -> Result<Vec<(i64, String, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT id, device_id, origin FROM session_drops WHERE id > $1 ORDER BY id",
        )
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("device_id")?,
                    r.try_get("origin")?,
                ))
            })
            .collect()
    }

    /// The number of the newest session drop (0 when there is none).
    pub async fn last_session_drop(&self) -> Result<i64, DbError> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS id FROM session_drops")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("id")?)
    }

    /// Every revoked device certificate serial (hex), oldest first.
    pub async fn revoked_serials(&self) -> Result<Vec<String>, DbError> {
        let rows = sqlx::query("SELECT serial FROM revoked_certs ORDER BY revoked_at, serial")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get::<String, _>("serial"))
            .collect::<Result<_, _>>()?)
    }
}
