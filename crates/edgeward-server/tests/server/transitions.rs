//! Device state transitions under concurrency: enrollment racing revocation, quarantine and
//! release racing revocation, revocation racing re-provisioning. Whatever the interleaving,
//! every transition happens whole or is refused, the end state agrees with the answers the
//! operators got, and a revoked certificate never connects again, before and after a
//! restart. The device CRL's number rises across the restart.

use std::{sync::Arc, time::Duration};

use crate::common::*;
use serde_json::json;

/// How many rounds of each race (per backend).
const ROUNDS: usize = 60;
/// Rounds run at once.
const PARALLEL: usize = 6;

/// A certificate a round got, and whether it must still connect at the end.
struct Cert {
    enrolled: Enrolled,
    serial: String,
    must_connect: bool,
}

fn serial_of(e: &Enrolled) -> String {
    let der = edgeward_core::pem::parse_labelled(e.cert_pem.as_bytes(), "CERTIFICATE")
        .expect("certificate pem")
        .swap_remove(0);
    edgeward_server::tls::serial_of(&der).expect("serial")
}

/// Waits `step` × 250 µs, so the rounds spread the second call across the first's window.
async fn stagger(step: usize) {
    tokio::time::sleep(Duration::from_micros(250 * (step % 12) as u64)).await;
}

async fn status_of(s: &Server, id: &str) -> String {
    let (_, v) = s.admin_get(&format!("/v1/admin/devices/{id}")).await;
    v["device"]["status"].as_str().expect("status").to_string()
}

/// Enrollment racing revocation: revocation always succeeds (pending and active may be
/// revoked), so the device ends revoked, and a certificate the enrollment got is revoked.
async fn enroll_vs_revoke(s: Arc<Server>, round: usize) -> Vec<Cert> {
    let id = device_id("er");
    let token = s.register(&id, "cam").await;
    let revoke_path = format!("/v1/admin/devices/{id}/revoke");
    let ((enrolled_status, (v, enrolled)), (revoked, rv)) =
        tokio::join!(enroll_with(&s, &token), async {
            stagger(round).await;
            s.admin_post(&revoke_path, json!({})).await
        });
    assert_eq!(revoked, 200, "round {round}: {rv}");
    assert_eq!(status_of(&s, &id).await, "revoked", "round {round}");
    match enrolled_status {
        200 => {
            let serial = serial_of(&enrolled);
            vec![Cert {
                enrolled,
                serial,
                must_connect: false,
            }]
        }
        403 => {
            assert_eq!(v["error"], "status", "round {round}: {v}");
            Vec::new()
        }
        other => panic!("round {round}: enrollment answered {other}: {v}"),
    }
}

/// Quarantine, release and revocation at once on an enrolled device: revocation always
/// succeeds, so the device ends revoked whatever the other two did.
async fn quarantine_release_vs_revoke(s: Arc<Server>, round: usize) -> Vec<Cert> {
    let id = device_id("qr");
    let enrolled = s.enroll(&id, "cam").await;
    let serial = serial_of(&enrolled);
    let path = |action: &str| format!("/v1/admin/devices/{id}/{action}");
    let quarantine = path("quarantine");
    let (q, r, (revoked, rv)) = tokio::join!(
        s.admin_post(&quarantine, json!({})),
        async {
            stagger(round).await;
            s.admin_post(&path("release"), json!({})).await
        },
        async {
            stagger(round / 2).await;
            s.admin_post(&path("revoke"), json!({})).await
        }
    );
    assert_eq!(revoked, 200, "round {round}: {rv}");
    for (status, v) in [q, r] {
        assert!(
            status == 200 || status == 409,
            "round {round}: {status} {v}"
        );
    }
    assert_eq!(status_of(&s, &id).await, "revoked", "round {round}");
    vec![Cert {
        enrolled,
        serial,
        must_connect: false,
    }]
}

/// Revocation racing re-provisioning: both always succeed; the old certificate is revoked
/// either way, and the new token enrolls the device exactly when it ended pending.
async fn revoke_vs_reprovision(s: Arc<Server>, round: usize) -> Vec<Cert> {
    let id = device_id("rp");
    let old = s.enroll(&id, "cam").await;
    let old_serial = serial_of(&old);
    let path = |action: &str| format!("/v1/admin/devices/{id}/{action}");
    let revoke = path("revoke");
    let ((revoked, rv), (reprovisioned, pv)) =
        tokio::join!(s.admin_post(&revoke, json!({})), async {
            stagger(round).await;
            s.admin_post(&path("reprovision"), json!({})).await
        });
    assert_eq!(revoked, 200, "round {round}: {rv}");
    assert_eq!(reprovisioned, 200, "round {round}: {pv}");
    let end = status_of(&s, &id).await;
    let token = pv["enrollment_token"].as_str().expect("token");
    let (status, (v, new)) = enroll_with(&s, token).await;
    let mut certs = vec![Cert {
        enrolled: old,
        serial: old_serial,
        must_connect: false,
    }];
    match end.as_str() {
        "pending" => {
            assert_eq!(status, 200, "round {round}: {v}");
            let serial = serial_of(&new);
            certs.push(Cert {
                enrolled: new,
                serial,
                must_connect: true,
            });
        }
        "revoked" => assert_eq!(status, 403, "round {round}: {v}"),
        other => panic!("round {round}: ended {other}"),
    }
    certs
}

/// Whether `e`'s certificate gets an answer from the device listener.
async fn connects(s: &Server, e: &Enrolled) -> bool {
    s.device_client(e)
        .get(s.device_url("/healthz"))
        .send()
        .await
        .is_ok()
}

/// The device CRL's number.
fn crl_number(s: &Server) -> u64 {
    let out = std::process::Command::new("openssl")
        .args(["crl", "-noout", "-crlnumber", "-in"])
        .arg(s.dir.path().join("device-crl.pem"))
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .trim()
        .strip_prefix("crlNumber=0x")
        .unwrap_or_else(|| panic!("{text}"));
    u64::from_str_radix(hex, 16).expect("crl number")
}

/// Checks every certificate against the running server: revoked ones are in the deny set
/// and the CRL and do not connect; the others connect.
async fn check(s: &Server, certs: &[Cert], when: &str) {
    let crl = std::process::Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(s.dir.path().join("device-crl.pem"))
        .output()
        .expect("openssl");
    let crl = String::from_utf8_lossy(&crl.stdout).to_string();
    let denied = s.running.app.revoked.read().expect("deny set").clone();
    for c in certs {
        let listed = crl.contains(&format!("Serial Number: {}", c.serial.to_ascii_uppercase()));
        assert_eq!(!c.must_connect, listed, "{when}: {} on the CRL", c.serial);
        assert_eq!(
            !c.must_connect,
            denied.contains(&c.serial),
            "{when}: deny set"
        );
        assert_eq!(
            c.must_connect,
            connects(s, &c.enrolled).await,
            "{when}: certificate {} of {}",
            c.serial,
            c.enrolled.id
        );
    }
}

both_backends!(
    concurrent_transitions_end_consistent_and_revoked_never_connects,
    |backend| async move {
        // The per-address limits are lifted: every round calls from this address.
        let lifted = edgeward_server::config::LimitConfig {
            per_second: 100_000,
            burst: 100_000,
        };
        let s = Arc::new(
            start_with(
                backend,
                |c| {
                    c.enroll_limit = lifted;
                    c.ip_limit = lifted;
                },
                None,
            )
            .await,
        );
        let mut certs = Vec::new();
        let mut rounds = tokio::task::JoinSet::new();
        for round in 0..3 * ROUNDS {
            if rounds.len() >= PARALLEL {
                certs.extend(rounds.join_next().await.expect("round").expect("join"));
            }
            let s = s.clone();
            rounds.spawn(async move {
                match round % 3 {
                    0 => enroll_vs_revoke(s, round / 3).await,
                    1 => quarantine_release_vs_revoke(s, round / 3).await,
                    _ => revoke_vs_reprovision(s, round / 3).await,
                }
            });
        }
        while let Some(r) = rounds.join_next().await {
            certs.extend(r.expect("join"));
        }
        assert!(
            certs.len() >= 2 * ROUNDS,
            "only {} certificates",
            certs.len()
        );
        check(&s, &certs, "before the restart").await;
        let number = crl_number(&s);

        let Ok(s) = Arc::try_unwrap(s) else {
            panic!("the server is still shared")
        };
        let config = s.running.app.config.clone();
        let Server { running, dir, .. } = s;
        running.stop().await;
        let s = serve(config, dir, None).await;
        check(&s, &certs, "after the restart").await;
        assert!(
            crl_number(&s) > number,
            "the CRL number went from {number} to {}",
            crl_number(&s)
        );
        s.running.stop().await;
    }
);
