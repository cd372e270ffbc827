//! Staged rollouts: which devices are offered which release, what they reported, and the
//! rule that halts a stage by itself.
//!
//! A rollout names a release version of the update repository and who is offered it: a
//! share of the fleet, a list of devices, or a hardware class. The share is chosen by a
//! hash of the version and the device id ([`bucket`]): deterministic (a device asks again
//! and gets the same answer, every replica agrees) and nested (raising 5 % to 25 % keeps
//! the first 5 %). Each new rollout of a version is its next stage. Devices report each
//! phase of their update; a stage whose failure rate — reverted / (confirmed + reverted)
//! among the devices offered the release in that stage — exceeds its threshold once at
//! least its minimum sample has finished is halted by compare-and-set (one audit entry,
//! whichever report tipped it), and a halted stage offers nothing more.
//!
//! The server only chooses whom to offer a release to; the device still verifies the
//! offered target through TUF (see docs/updates.md), so a wrong offer cannot install
//! anything the repository's keys did not sign.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use edgeward_proto::{
    rollout::{Rollout, Selector},
    update_report::{Phase, UpdateReport},
};
use serde_json::{json, Value};
use sqlx::Row;

use crate::db::{Db, DbError};

/// Every phase of an update, in order.
const PHASES: [Phase; 5] = [
    Phase::Offered,
    Phase::Downloaded,
    Phase::Installed,
    Phase::Confirmed,
    Phase::Reverted,
];

/// Which of 10 000 buckets a device falls into for `version` (compared with a share in
/// basis points).
pub fn bucket(version: &str, device: &str) -> u32 {
    let mut input = Vec::with_capacity(version.len() + device.len() + 18);
    input.extend_from_slice(b"edgeward-rollout\0");
    input.extend_from_slice(version.as_bytes());
    input.push(0);
    input.extend_from_slice(device.as_bytes());
    let digest = edgeward_core::sha256(&input);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 10_000) as u32
}

/// A percentage in basis points as text: `5`, `12.5`, `0.01`.
pub fn percent_text(bp: u32) -> String {
    let text = format!("{}.{:02}", bp / 100, bp % 100);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The current stage of a release's rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The release version.
    pub version: String,
    /// 1 for the first rollout of the version, then one more for each.
    pub stage: i64,
    /// Who it is offered to.
    pub selector: Selector,
    /// Failure rate above which it halts, in basis points.
    pub threshold_bp: u32,
    /// Finished updates needed before it can halt.
    pub min_sample: u32,
    /// When the stage started (Unix seconds).
    pub started_at: i64,
    /// When it halted, if it has.
    pub halted_at: Option<i64>,
    /// Why it halted.
    pub halt_reason: Option<String>,
}

impl Stage {
    /// Whether the stage offers the release to `device` of hardware class `class`.
    pub fn selects(&self, device: &str, class: &str) -> bool {
        match &self.selector {
            Selector::Percent(bp) => bucket(&self.version, device) < *bp,
            Selector::Devices(ids) => ids.binary_search_by(|d| d.as_str().cmp(device)).is_ok(),
            Selector::Hardware(c) => c == class,
        }
    }

    /// The selector as JSON: `{"percent": 12.5}`, `{"devices": [...]}`, `{"hardware": "cam"}`.
    pub fn selector_json(&self) -> Value {
        match &self.selector {
            Selector::Percent(bp) => json!({ "percent": f64::from(*bp) / 100.0 }),
            Selector::Devices(ids) => json!({ "devices": ids }),
            Selector::Hardware(c) => json!({ "hardware": c }),
        }
    }
}

fn stage_from(row: &sqlx::any::AnyRow) -> Result<Stage, DbError> {
    let kind: String = row.try_get("selector")?;
    let target: String = row.try_get("target")?;
    let bad = |what: &str| DbError::Sqlx(sqlx::Error::Decode(what.to_string().into()));
    let selector = match kind.as_str() {
        "percent" => Selector::Percent(target.parse().map_err(|_| bad("rollout percent"))?),
        "devices" => {
            Selector::Devices(serde_json::from_str(&target).map_err(|_| bad("rollout devices"))?)
        }
        "hardware" => Selector::Hardware(target),
        _ => return Err(bad("rollout selector")),
    };
    let int = |name: &str| -> Result<u32, DbError> {
        let v: i64 = row.try_get(name)?;
        u32::try_from(v).map_err(|_| bad(name))
    };
    Ok(Stage {
        version: row.try_get("version")?,
        stage: row.try_get("stage")?,
        selector,
        threshold_bp: int("threshold_bp")?,
        min_sample: int("min_sample")?,
        started_at: row.try_get("started_at")?,
        halted_at: row.try_get("halted_at")?,
        halt_reason: row.try_get("halt_reason")?,
    })
}

/// Starts the next stage of `version`'s rollout (the first if there is none): the new
/// selector and halt rule replace the old, and a halt is lifted (the operator decided).
pub async fn start(db: &Db, version: &str, r: &Rollout, now: i64) -> Result<Stage, DbError> {
    let (kind, target) = match &r.selector {
        Selector::Percent(bp) => ("percent", bp.to_string()),
        Selector::Devices(ids) => ("devices", json!(ids).to_string()),
        Selector::Hardware(c) => ("hardware", c.clone()),
    };
    let row = sqlx::query(
        "INSERT INTO rollouts (version, stage, selector, target, threshold_bp, min_sample, started_at) \
         VALUES ($1, 1, $2, $3, $4, $5, $6) \
         ON CONFLICT (version) DO UPDATE SET stage = rollouts.stage + 1, selector = excluded.selector, \
         target = excluded.target, threshold_bp = excluded.threshold_bp, min_sample = excluded.min_sample, \
         started_at = excluded.started_at, halted_at = NULL, halt_reason = NULL \
         RETURNING *",
    )
    .bind(version)
    .bind(kind)
    .bind(target)
    .bind(i64::from(r.threshold_bp))
    .bind(i64::from(r.min_sample))
    .bind(now)
    .fetch_one(db.pool())
    .await?;
    stage_from(&row)
}

/// The current stage of `version`'s rollout.
pub async fn stage(db: &Db, version: &str) -> Result<Option<Stage>, DbError> {
    let row = sqlx::query("SELECT * FROM rollouts WHERE version = $1")
        .bind(version)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(stage_from).transpose()
}

/// Every rollout that is not halted, the most recently started first.
pub async fn running(db: &Db) -> Result<Vec<Stage>, DbError> {
    let rows = sqlx::query(
        "SELECT * FROM rollouts WHERE halted_at IS NULL ORDER BY started_at DESC, version DESC",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(stage_from).collect()
}

/// The stage in which `device` was offered `version`, if it was.
pub async fn offered_in(db: &Db, device: &str, version: &str) -> Result<Option<i64>, DbError> {
    let row = sqlx::query(
        "SELECT stage FROM update_reports WHERE device_id = $1 AND version = $2 AND phase = 'offered' AND stage > 0",
    )
    .bind(device)
    .bind(version)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|r| r.try_get("stage")).transpose()?)
}

/// The versions `device` finished (confirmed or reverted): it is not offered them again.
pub async fn finished(db: &Db, device: &str) -> Result<Vec<String>, DbError> {
    let rows = sqlx::query(
        "SELECT DISTINCT version FROM update_reports WHERE device_id = $1 AND phase IN ('confirmed', 'reverted')",
    )
    .bind(device)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>("version"))
        .collect::<Result<_, _>>()?)
}

/// Records a report in `stage`; false if the device had reported that phase of that
/// version before (the first report of each phase is the one kept, except that a report
/// kept outside any stage (0) moves into the first stage that counts it).
pub async fn record(db: &Db, r: &UpdateReport, stage: i64, now: i64) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO update_reports (device_id, version, phase, target, reason, detail, stage, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (device_id, version, phase) \
         DO UPDATE SET stage = excluded.stage WHERE update_reports.stage = 0 AND excluded.stage > 0",
    )
    .bind(&r.device_id)
    .bind(&r.version)
    .bind(r.phase.name())
    .bind(&r.target)
    .bind(r.reason.map(|x| x.code()))
    .bind(&r.detail)
    .bind(stage)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Devices per phase for `version`, in `stage` only when given.
pub async fn counts(
    db: &Db,
    version: &str,
    stage: Option<i64>,
) -> Result<BTreeMap<&'static str, i64>, DbError> {
    let rows = match stage {
        Some(s) => sqlx::query(
            "SELECT phase, COUNT(*) AS n FROM update_reports WHERE version = $1 AND stage = $2 GROUP BY phase",
        )
        .bind(version)
        .bind(s),
        None => sqlx::query(
            "SELECT phase, COUNT(*) AS n FROM update_reports WHERE version = $1 GROUP BY phase",
        )
        .bind(version),
    }
    .fetch_all(db.pool())
    .await?;
    let mut out: BTreeMap<&'static str, i64> = PHASES.iter().map(|p| (p.name(), 0)).collect();
    for r in rows {
        let phase: String = r.try_get("phase")?;
        if let Some(p) = PHASES.iter().find(|p| p.name() == phase) {
            out.insert(p.name(), r.try_get("n")?);
        }
    }
    Ok(out)
}

/// Reverts of `version` by reason.
pub async fn revert_reasons(db: &Db, version: &str) -> Result<BTreeMap<String, i64>, DbError> {
    let rows = sqlx::query(
        "SELECT reason, COUNT(*) AS n FROM update_reports WHERE version = $1 AND phase = 'reverted' GROUP BY reason",
    )
    .bind(version)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let reason: Option<String> = r.try_get("reason")?;
            Ok((reason.unwrap_or_default(), r.try_get("n")?))
        })
        .collect()
}

/// Whether `reverted` of `confirmed + reverted` finished updates exceed `threshold_bp`,
/// given at least `min_sample` finished.
pub fn failing(confirmed: i64, reverted: i64, threshold_bp: u32, min_sample: u32) -> bool {
    let finished = confirmed + reverted;
    finished >= i64::from(min_sample)
        && finished > 0
        && reverted * 10_000 > i64::from(threshold_bp) * finished
}

/// Halts `s` if its stage is failing: one compare-and-set, so that exactly one caller gets
/// the reason back (to audit) however many reports arrive at once.
pub async fn halt_if_failing(db: &Db, s: &Stage, now: i64) -> Result<Option<String>, DbError> {
    let c = counts(db, &s.version, Some(s.stage)).await?;
    let (confirmed, reverted) = (c["confirmed"], c["reverted"]);
    if !failing(confirmed, reverted, s.threshold_bp, s.min_sample) {
        return Ok(None);
    }
    let finished = confirmed + reverted;
    let reason = format!(
        "stage {}: {reverted} of {finished} finished updates reverted ({:.1} %), above the threshold of {} %",
        s.stage,
        reverted as f64 * 100.0 / finished as f64,
        percent_text(s.threshold_bp)
    );
    let halted = sqlx::query(
        "UPDATE rollouts SET halted_at = $1, halt_reason = $2 WHERE version = $3 AND stage = $4 AND halted_at IS NULL",
    )
    .bind(now)
    .bind(&reason)
    .bind(&s.version)
    .bind(s.stage)
    .execute(db.pool())
    .await?;
    Ok((halted.rows_affected() == 1).then_some(reason))
}

/// The status of `version`'s rollout as the admin API answers it.
pub async fn status(db: &Db, s: &Stage) -> Result<Value, DbError> {
    let all = counts(db, &s.version, None).await?;
    let this = counts(db, &s.version, Some(s.stage)).await?;
    Ok(json!({
        "version": s.version,
        "stage": s.stage,
        "selector": s.selector_json(),
        "threshold": f64::from(s.threshold_bp) / 100.0,
        "min_sample": s.min_sample,
        "started_at": s.started_at,
        "halted": s.halted_at.is_some(),
        "halted_at": s.halted_at,
        "halt_reason": s.halt_reason,
        "counts": all,
        "stage_counts": this,
        "revert_reasons": revert_reasons(db, &s.version).await?,
    }))
}

/// A target of a release: its path and the hardware classes it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseTarget {
    /// Target path.
    pub path: String,
    /// `custom.edgeward.hardware`.
    pub hardware: Vec<String>,
}

/// The releases of the update repository: every target carrying Edgeward release fields,
/// by version, over every targets role.
#[derive(Debug, Default)]
pub struct Releases {
    by_version: BTreeMap<String, Vec<ReleaseTarget>>,
}

impl Releases {
    /// Reads the repository's current metadata (what `timestamp.json` names).
    pub fn read(repo: &Path) -> Result<Self, String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let r = edgeward_update::repo::Repository::open(
            repo,
            edgeward_update::repo::Expiry::default(),
            now,
        )
        .map_err(|e| e.to_string())?;
        let mut by_version: BTreeMap<String, Vec<ReleaseTarget>> = BTreeMap::new();
        for role in r.role_names() {
            for (path, entry) in r.targets(&role).into_iter().flatten() {
                let e = &entry["custom"]["edgeward"];
                let Some(version) = e["version"].as_str() else {
                    continue;
                };
                let hardware = e["hardware"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                by_version
                    .entry(version.to_string())
                    .or_default()
                    .push(ReleaseTarget {
                        path: path.clone(),
                        hardware,
                    });
            }
        }
        Ok(Releases { by_version })
    }

    /// The targets of `version` (none if no target carries it).
    pub fn targets(&self, version: &str) -> &[ReleaseTarget] {
        self.by_version.get(version).map_or(&[], Vec::as_slice)
    }

    /// The targets of `version` built for hardware class `class`.
    pub fn for_class(&self, version: &str, class: &str) -> Vec<String> {
        self.targets(version)
            .iter()
            .filter(|t| t.hardware.iter().any(|h| h == class))
            .map(|t| t.path.clone())
            .collect()
    }
}

/// What identifies one state of the repository: `timestamp.json`'s length and time of
/// change (the repository writer replaces it last, atomically, on every publish).
type Stamp = (u64, Option<SystemTime>);

/// [`Releases`], read again only when `timestamp.json` changes.
#[derive(Default)]
pub struct ReleaseCache {
    current: Mutex<Option<(Stamp, Arc<Releases>)>>,
}

impl ReleaseCache {
    /// The releases of the repository at `repo` (blocking: reads files).
    pub fn load(&self, repo: &Path) -> Result<Arc<Releases>, String> {
        let meta = std::fs::metadata(repo.join("metadata/timestamp.json"))
            .map_err(|e| format!("{}: {e}", repo.display()))?;
        let stamp = (meta.len(), meta.modified().ok());
        {
            let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((s, releases)) = current.as_ref() {
                if *s == stamp {
                    return Ok(releases.clone());
                }
            }
        }
        let releases = Arc::new(Releases::read(repo)?);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((stamp, releases.clone()));
        Ok(releases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_nested_and_close_to_the_share() {
        assert_eq!(bucket("2.0.0", "cam-1"), bucket("2.0.0", "cam-1"));
        let devices: Vec<String> = (0..20_000).map(|i| format!("dev-{i}")).collect();
        let chosen = |bp: u32| -> Vec<&String> {
            devices.iter().filter(|d| bucket("2.0.0", d) < bp).collect()
        };
        let five = chosen(500);
        let twenty_five = chosen(2500);
        assert!(five.iter().all(|d| twenty_five.contains(d)));
        // 5 % of 20 000 is 1000; a fair hash lands within a few standard deviations (~31).
        assert!((850..1150).contains(&five.len()), "{}", five.len());
        assert!(
            (4700..5300).contains(&twenty_five.len()),
            "{}",
            twenty_five.len()
        );
        // Another version chooses other devices.
        let other = devices.iter().filter(|d| bucket("3.0.0", d) < 500).count();
        let both = five.iter().filter(|d| bucket("3.0.0", d) < 500).count();
        assert!(other > 850 && both < 150, "{other} {both}");
    }

    #[test]
    fn the_failure_rule_needs_its_sample_and_a_rate_above_the_threshold() {
        assert!(!failing(0, 3, 500, 10), "below the minimum sample");
        assert!(failing(7, 3, 500, 10));
        assert!(!failing(19, 1, 500, 10), "exactly 5 % is not above 5 %");
        assert!(failing(18, 2, 500, 10));
        assert!(!failing(0, 0, 0, 1));
        assert!(failing(0, 1, 0, 1));
        assert_eq!(percent_text(500), "5");
        assert_eq!(percent_text(1250), "12.5");
        assert_eq!(percent_text(1), "0.01");
    }
}
