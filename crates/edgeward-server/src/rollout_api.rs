//! The rollout endpoints. Devices (through the device gate): `GET /v1/device/update/offer`
//! says which release, if any, the device is offered, and `POST /v1/device/update-report`
//! takes its update reports. Operators (admin API): `POST /v1/admin/releases/{version}/rollout`
//! starts a stage, `GET /v1/admin/releases/{version}/status` counts what devices reported.
//! The rules themselves (selection, halting) are in [`crate::rollout`].

use axum::{
    extract::{Path, State},
    routing::{get, post},
    Extension, Json, Router,
};
use edgeward_proto::update_report::{self, Phase};
use serde_json::{json, Value};

use crate::{
    admin_api::Admin,
    app::{ApiError, Shared},
    body::Small,
    db::Role,
    device_api::Gated,
    rollout::{self, Releases},
};

/// Longest release version in an admin path.
const MAX_VERSION: usize = update_report::MAX_VERSION;

/// The device routes (merged into the device API, behind its gate).
pub fn device_routes() -> Router<Shared> {
    Router::new()
        .route("/v1/device/update/offer", get(offer))
        // A literal, for the route scan of the tests (`routes::declared`); the test below
        // keeps it equal to the path the agent posts to.
        .route("/v1/device/update-report", post(report))
}

/// The admin routes (merged into the admin API, behind its key check).
pub fn admin_routes() -> Router<Shared> {
    Router::new()
        .route("/v1/admin/releases/{version}/rollout", post(start))
        .route("/v1/admin/releases/{version}/status", get(status))
}

/// The repository's releases, or why there are none to offer.
async fn releases(app: &Shared) -> Result<std::sync::Arc<Releases>, ApiError> {
    let Some(repo) = app.config.update_repo.clone() else {
        return Err(ApiError::not_found(
            "this server has no update repository (update_repo)",
        ));
    };
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || app2.releases.load(&repo))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// `GET /v1/device/update/offer`: `{"version": V, "targets": [paths], "stage": n}` for the
/// most recently started running rollout that selects this device and has targets for its
/// hardware class and that the device has not finished (confirmed or reverted) already,
/// else `{"version": null, "targets": []}`; while an incident holds the device's updates
/// (containment), `{"version": null, "targets": [], "held": true}`. The offer is recorded
/// as the device's `offered` report.
async fn offer(State(app): State<Shared>, call: Gated) -> Result<Json<Value>, ApiError> {
    let device = app
        .registry
        .device(&app.db, &call.device)
        .await?
        .ok_or_else(|| ApiError::internal("a gated device without its record"))?;
    if crate::incidents::store::updates_held(&app.db, &device.id).await? {
        return Ok(Json(
            json!({ "version": null, "targets": [], "held": true }),
        ));
    }
    let running = rollout::running(&app.db).await?;
    if running.is_empty() {
        return Ok(Json(json!({ "version": null, "targets": [] })));
    }
    let releases = releases(&app).await?;
    let finished = rollout::finished(&app.db, &device.id).await?;
    for s in running {
        if !s.selects(&device.id, &device.hardware_class) || finished.contains(&s.version) {
            continue;
        }
        let targets = releases.for_class(&s.version, &device.hardware_class);
        let Some(first) = targets.first() else {
            continue;
        };
        let offered = update_report::UpdateReport {
            v: update_report::VERSION,
            device_id: device.id.clone(),
            target: first.clone(),
            version: s.version.clone(),
            phase: Phase::Offered,
            reason: None,
            detail: String::new(),
            at: app.now(),
        };
        let stage = rollout::offered_in(&app.db, &device.id, &s.version)
            .await?
            .unwrap_or(s.stage);
        rollout::record(&app.db, &offered, stage, app.now()).await?;
        return Ok(Json(
            json!({ "version": s.version, "targets": targets, "stage": s.stage }),
        ));
    }
    Ok(Json(json!({ "version": null, "targets": [] })))
}

/// `POST /v1/device/update-report`: a report from the device its certificate names (any
/// other is refused). It counts in the stage that offered the device the release; finished
/// updates (confirmed, reverted) there may halt it. A report about a release no rollout
/// offered this device is stored with stage 0 and counts in no stage.
async fn report(State(app): State<Shared>, call: Gated) -> Result<Json<Value>, ApiError> {
    let r = update_report::parse(&call.body).map_err(|e| ApiError::bad_request(e.0))?;
    if r.device_id != *call.device {
        app.audit_refusal(
            &format!("device:{}", call.device),
            "update.report.refused",
            Some(&call.device),
            &format!("report names device {:?}", r.device_id),
        )
        .await;
        return Err(ApiError::forbidden(
            "wrong_device",
            "a device may only report about itself",
        ));
    }
    // The stage the report counts in: the one the device was offered the release in, else
    // the current stage if it selects the device, else none (0): the report is stored but
    // halts nothing, so a device updating from a repository outside any rollout still
    // delivers its reports.
    let current = rollout::stage(&app.db, &r.version).await?;
    let stage = match rollout::offered_in(&app.db, &r.device_id, &r.version).await? {
        Some(stage) => stage,
        None => match &current {
            Some(s) => {
                let device = app
                    .registry
                    .device(&app.db, &call.device)
                    .await?
                    .ok_or_else(|| ApiError::internal("a gated device without its record"))?;
                if s.selects(&device.id, &device.hardware_class) {
                    s.stage
                } else {
                    0
                }
            }
            None => 0,
        },
    };
    if r.phase != Phase::Offered {
        // Every later phase implies the offer; keep the stage it counts in.
        let mut offered = r.clone();
        offered.phase = Phase::Offered;
        offered.reason = None;
        offered.detail.clear();
        rollout::record(&app.db, &offered, stage, app.now()).await?;
    }
    let recorded = rollout::record(&app.db, &r, stage, app.now()).await?;
    if recorded && r.phase == Phase::Reverted {
        app.audit(
            &format!("device:{}", r.device_id),
            "update.reverted",
            Some(&r.device_id),
            &format!(
                "{} {}: {}",
                r.version,
                r.reason.map_or("", |x| x.code()),
                r.detail
            ),
        )
        .await;
    }
    let Some(s) = current.filter(|s| stage > 0 && s.stage == stage) else {
        return Ok(Json(
            json!({ "recorded": recorded, "stage": stage, "halted": false }),
        ));
    };
    let mut halted = s.halted_at.is_some();
    if recorded && !halted && matches!(r.phase, Phase::Confirmed | Phase::Reverted) {
        if let Some(reason) = rollout::halt_if_failing(&app.db, &s, app.now()).await? {
            app.audit(
                "server",
                "release.rollout.halted",
                None,
                &format!("{}: {reason}", s.version),
            )
            .await;
            halted = true;
        }
    }
    Ok(Json(
        json!({ "recorded": recorded, "stage": stage, "halted": halted }),
    ))
}

/// Checks a version taken from an admin path.
fn version_arg(version: &str) -> Result<(), ApiError> {
    if version.is_empty() || version.len() > MAX_VERSION || version.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "a version is 1 to {MAX_VERSION} bytes with no control characters"
        )));
    }
    Ok(())
}

/// `POST /v1/admin/releases/{version}/rollout` (operator): the next stage of the version's
/// rollout. The version must be a release of the update repository.
async fn start(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(version): Path<String>,
    Small(body): Small,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Operator)?;
    version_arg(&version)?;
    let r =
        edgeward_proto::rollout::rollout(&body.bytes).map_err(|e| ApiError::bad_request(e.0))?;
    let releases = releases(&app).await?;
    if releases.targets(&version).is_empty() {
        return Err(ApiError::not_found(format!(
            "unknown version {version:?}: no target of the update repository carries it"
        )));
    }
    let s = rollout::start(&app.db, &version, &r, app.now()).await?;
    app.audit(
        &admin.actor(),
        "release.rollout",
        None,
        &format!(
            "{version} stage {}: {}, threshold {} %, min sample {}",
            s.stage,
            s.selector_json(),
            rollout::percent_text(s.threshold_bp),
            s.min_sample
        ),
    )
    .await;
    Ok(Json(rollout::status(&app.db, &s).await?))
}

/// `GET /v1/admin/releases/{version}/status` (viewer).
async fn status(
    State(app): State<Shared>,
    Extension(admin): Extension<Admin>,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require(Role::Viewer)?;
    version_arg(&version)?;
    let s = rollout::stage(&app.db, &version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no rollout of version {version:?}")))?;
    Ok(Json(rollout::status(&app.db, &s).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_report_route_is_the_path_agents_post_to() {
        assert_eq!(
            edgeward_proto::update_report::PATH,
            "/v1/device/update-report"
        );
    }
}
