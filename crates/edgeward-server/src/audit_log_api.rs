//! The admin API of the tamper-evident audit log (behind the admin gate, any role): the
//! latest signed checkpoint, entries by range in log order, and inclusion and consistency
//! proofs, which is all `edgeward audit verify` needs to check the log without trusting
//! this server.

use axum::{
    extract::{Query, State},
    routing::get,
    Json, Router,
};
use edgeward_audit::proof::{ConsistencyProof, InclusionProof};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    app::{ApiError, Shared},
    audit_log,
};

/// The audit-log routes (merged under the admin gate).
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/admin/audit/checkpoint", get(checkpoint))
        .route("/v1/admin/audit/entries", get(entries))
        .route("/v1/admin/audit/proof/inclusion", get(inclusion))
        .route("/v1/admin/audit/proof/consistency", get(consistency))
}

/// The tree head signed now, as a C2SP signed note (`text/plain`).
async fn checkpoint(
    State(app): State<Shared>,
) -> Result<([(&'static str, &'static str); 1], String), ApiError> {
    let (size, root) = audit_log::head(&app.db).await?;
    let note = app
        .audit_signer
        .checkpoint(size, root)
        .map_err(ApiError::internal)?;
    Ok(([("content-type", "text/plain; charset=utf-8")], note))
}

/// `GET /v1/admin/audit/entries?start=&end=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    start: u64,
    end: u64,
}

/// Entries `start..end` (at most 1000; `end` past the head is cut to it).
async fn entries(
    State(app): State<Shared>,
    Query(r): Query<Range>,
) -> Result<Json<Value>, ApiError> {
    if r.end < r.start {
        return Err(ApiError::bad_request("end is before start"));
    }
    let (size, _) = audit_log::head(&app.db).await?;
    let entries = audit_log::entries(&app.db, r.start, r.end.min(size)).await?;
    Ok(Json(json!({ "size": size, "entries": entries })))
}

/// `GET /v1/admin/audit/proof/inclusion?index=&size=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    index: u64,
    size: u64,
}

/// The audit path of entry `index` in the tree of `size` entries.
async fn inclusion(
    State(app): State<Shared>,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<InclusionProof>, ApiError> {
    within_head(&app, q.size).await?;
    let proof = audit_log::inclusion_proof(&app.db, q.index, q.size)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "entry {} is not in a log of {} entries",
                q.index, q.size
            ))
        })?;
    Ok(Json(InclusionProof {
        index: q.index,
        size: q.size,
        proof,
    }))
}

/// `GET /v1/admin/audit/proof/consistency?old_size=&size=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    old_size: u64,
    size: u64,
}

/// The proof that the tree of `size` entries extends the tree of `old_size`.
async fn consistency(
    State(app): State<Shared>,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    within_head(&app, q.size).await?;
    let proof = audit_log::consistency_proof(&app.db, q.old_size, q.size)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "no consistency proof from {} to {} entries (0 < old_size <= size)",
                q.old_size, q.size
            ))
        })?;
    Ok(Json(ConsistencyProof {
        old_size: q.old_size,
        size: q.size,
        proof,
    }))
}

/// Refuses a tree size beyond the log's.
async fn within_head(app: &Shared, size: u64) -> Result<(), ApiError> {
    let (head, _) = audit_log::head(&app.db).await?;
    if size > head {
        return Err(ApiError::bad_request(format!(
            "the log has {head} entries, not {size}"
        )));
    }
    Ok(())
}
