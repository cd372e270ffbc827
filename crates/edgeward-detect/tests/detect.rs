//! The detection library end to end: baselines and their checkpoints, cohorts, rules,
//! geography, cloned certificates, the NAB harness, and the fleet's false-alarm rate.

use std::net::IpAddr;

use edgeward_detect::alert::{AlertKind, Severity};
use edgeward_detect::baseline::{Baseline, Params};
use edgeward_detect::fleet::{Fleet, FleetConfig, FleetError};
use edgeward_detect::geo::{Area, GeoConfig, Point, Sighting};
use edgeward_detect::rules::Event;
use edgeward_detect::state::{StateError, STATE_BYTES};

/// A small deterministic generator for simulated telemetry (SplitMix64 + Box–Muller).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn gauss(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const STEP: i64 = 600;

/// A healthy device's inference rate: a daily cycle plus noise.
fn healthy(noise: &mut Noise, phase: f64, t: i64) -> f64 {
    let day = (t % 86_400) as f64 / 86_400.0;
    100.0 + 40.0 * (2.0 * std::f64::consts::PI * (day + phase)).sin() + 5.0 * noise.gauss()
}

#[test]
fn state_is_small_and_survives_a_restart() {
    assert!(
        size_of::<Baseline>() <= 256,
        "{} bytes",
        size_of::<Baseline>()
    );
    const { assert!(STATE_BYTES <= 256) };
    let params = Params::default();
    let mut noise = Noise(7);
    let mut live = Baseline::new();
    for i in 0..3_000 {
        let t = T0 + i * STEP;
        live.update(&params, t, healthy(&mut noise, 0.0, t));
    }
    let mut restored = Baseline::from_bytes(&live.to_bytes()).expect("round trip");
    assert_eq!(restored, live);
    // The restored baseline goes on exactly as the live one.
    for i in 3_000..3_100 {
        let t = T0 + i * STEP;
        let v = healthy(&mut noise, 0.0, t) + if i == 3_050 { 400.0 } else { 0.0 };
        assert_eq!(restored.update(&params, t, v), live.update(&params, t, v));
    }
}

#[test]
fn damaged_state_is_refused() {
    let bytes = Baseline::new().to_bytes();
    assert_eq!(
        Baseline::from_bytes(&bytes[..10]),
        Err(StateError::Length(10))
    );
    let mut wrong = bytes;
    wrong[0] = 9;
    assert_eq!(Baseline::from_bytes(&wrong), Err(StateError::Version(9)));
    let mut nan = bytes;
    nan[13..17].copy_from_slice(&f32::NAN.to_le_bytes()); // interval
    assert_eq!(
        Baseline::from_bytes(&nan),
        Err(StateError::Field("interval"))
    );
}

#[test]
fn a_tenfold_jump_is_scored_and_an_outlier_does_not_drag_the_baseline() {
    let params = Params::default();
    let mut noise = Noise(1);
    let mut b = Baseline::new();
    for i in 0..2_000 {
        let t = T0 + i * STEP;
        let v = b.update(&params, t, healthy(&mut noise, 0.3, t));
        if i > 1_000 {
            assert!(v.score < 0.5, "healthy point {i} scored {}", v.score);
        }
    }
    let before = b.clone();
    let t = T0 + 2_000 * STEP;
    let jump = b.update(&params, t, 1_000.0);
    assert!(jump.score >= 0.5, "a tenfold jump scored {:?}", jump);
    // One outlier moved the forecast by at most the clip, not to 1000.
    let next = b.update(&params, t + STEP, healthy(&mut noise, 0.3, t + STEP));
    assert!(next.surprise < 30.0, "{next:?}");
    assert!(before.seen() + 2 == b.seen());
}

#[test]
fn non_finite_values_are_ignored() {
    let mut b = Baseline::new();
    let params = Params::default();
    b.update(&params, T0, 1.0);
    let before = b.clone();
    let v = b.update(&params, T0 + 60, f64::NAN);
    assert_eq!(v.score, 0.0);
    b.update(&params, T0 + 60, f64::INFINITY);
    assert_eq!(b, before);
}

fn fleet() -> Fleet {
    let mut fleet = Fleet::new(FleetConfig::default());
    fleet.register("dev-1", "jetson-orin", "1.4.2");
    fleet
}

#[test]
fn a_new_device_is_judged_against_its_cohort_from_its_first_report() {
    let mut fleet = Fleet::new(FleetConfig::default());
    let mut noise = Noise(3);
    for d in 0..20 {
        let id = format!("peer-{d}");
        fleet.register(&id, "jetson-orin", "1.4.2");
        for i in 0..300 {
            let t = T0 + i * STEP;
            fleet
                .observe_metric(&id, "inference_rate", t, healthy(&mut noise, 0.0, t))
                .unwrap();
        }
    }
    fleet.register("newcomer", "jetson-orin", "1.4.2");
    let t = T0 + 300 * STEP;
    let normal = fleet
        .observe_metric("newcomer", "inference_rate", t, healthy(&mut noise, 0.0, t))
        .unwrap();
    assert_eq!(normal, None);
    let alert = fleet
        .observe_metric("newcomer", "inference_rate", t + STEP, 2_000.0)
        .unwrap()
        .expect("alert");
    assert_eq!(
        alert.kind,
        AlertKind::Behaviour {
            metric: "inference_rate".into()
        }
    );
    assert!(alert.detail.contains("from its cohort"), "{}", alert.detail);
}

#[test]
fn observations_of_unknown_devices_and_bad_metrics_are_refused() {
    let mut fleet = fleet();
    assert_eq!(
        fleet.observe_metric("ghost", "cpu", T0, 1.0),
        Err(FleetError::UnknownDevice("ghost".into()))
    );
    assert_eq!(
        fleet.observe_metric("dev-1", "", T0, 1.0),
        Err(FleetError::BadMetric(String::new()))
    );
    assert_eq!(
        fleet.observe_metric("dev-1", "tab\there", T0, 1.0),
        Err(FleetError::BadMetric("tab\there".into()))
    );
    for m in 0..32 {
        fleet
            .observe_metric("dev-1", &format!("m{m}"), T0, 1.0)
            .unwrap();
    }
    assert_eq!(
        fleet.observe_metric("dev-1", "m32", T0, 1.0),
        Err(FleetError::TooManyMetrics("dev-1".into()))
    );
}

#[test]
fn day_one_rules() {
    let mut fleet = fleet();
    let release = vec!["ab".repeat(32)];
    let ev = |f: &mut Fleet, at, e: Event| f.observe_event("dev-1", at, &e, &release).unwrap();

    for i in 0..4 {
        assert_eq!(ev(&mut fleet, T0 + i, Event::AuthFailure), None);
    }
    let burst = ev(&mut fleet, T0 + 4, Event::AuthFailure).expect("burst");
    assert_eq!(
        (burst.kind, burst.severity),
        (AlertKind::AuthFailureBurst, Severity::High)
    );
    // Failures spread out over time are no burst.
    for i in 0..10 {
        assert_eq!(
            ev(&mut fleet, T0 + 1_000 + i * 61, Event::AuthFailure),
            None
        );
    }
    for i in 0..19 {
        assert_eq!(ev(&mut fleet, T0 + 2_000 + i, Event::RateLimited), None);
    }
    assert_eq!(
        ev(&mut fleet, T0 + 2_019, Event::RateLimited).unwrap().kind,
        AlertKind::RateLimitBurst
    );

    assert_eq!(
        ev(
            &mut fleet,
            T0,
            Event::ModelLoaded {
                hash: "AB".repeat(32)
            }
        ),
        None
    );
    let foreign = ev(
        &mut fleet,
        T0,
        Event::ModelLoaded {
            hash: "cd".repeat(32),
        },
    )
    .unwrap();
    assert_eq!(
        foreign.kind,
        AlertKind::ForeignModel {
            hash: "cd".repeat(32)
        }
    );
    assert_eq!(foreign.severity, Severity::Critical);

    assert_eq!(
        ev(
            &mut fleet,
            T0,
            Event::ListeningPorts {
                ports: vec![22, 8883]
            }
        ),
        None
    );
    assert_eq!(
        ev(
            &mut fleet,
            T0 + 60,
            Event::ListeningPorts {
                ports: vec![8883, 22]
            }
        ),
        None
    );
    let port = ev(
        &mut fleet,
        T0 + 120,
        Event::ListeningPorts {
            ports: vec![22, 8883, 4444],
        },
    )
    .unwrap();
    assert_eq!(port.kind, AlertKind::NewListeningPort { port: 4444 });
    assert_eq!(
        ev(
            &mut fleet,
            T0 + 180,
            Event::ListeningPorts {
                ports: vec![22, 4444]
            }
        ),
        None
    );

    let t = ev(
        &mut fleet,
        T0,
        Event::Tamper {
            detail: "case opened".into(),
        },
    )
    .unwrap();
    assert_eq!(
        (t.kind, t.severity),
        (AlertKind::Tamper, Severity::Critical)
    );
    assert_eq!(
        ev(&mut fleet, T0, Event::AttestationFailed).unwrap().kind,
        AlertKind::AttestationFailure
    );
    assert_eq!(
        ev(
            &mut fleet,
            T0,
            Event::VerificationFailed {
                what: "firmware".into()
            }
        )
        .unwrap()
        .kind,
        AlertKind::VerificationFailure
    );
    assert_eq!(
        ev(
            &mut fleet,
            T0,
            Event::BootRecovery {
                reason: "stage 2".into()
            }
        )
        .unwrap()
        .kind,
        AlertKind::BootRecovery
    );
}

const NEW_YORK: Point = Point {
    lat: 40.7128,
    lon: -74.0060,
};
const LOS_ANGELES: Point = Point {
    lat: 34.0522,
    lon: -118.2437,
};

fn at(t: i64, ip: &str, place: Point) -> Sighting {
    Sighting {
        at: t,
        network: ip.parse::<IpAddr>().unwrap(),
        place: Some(place),
    }
}

#[test]
fn new_york_to_los_angeles() {
    let km = NEW_YORK.distance_km(&LOS_ANGELES);
    assert!((km - 3_936.0).abs() < 5.0, "{km}");

    let mut fleet = fleet();
    fleet
        .observe_connection("dev-1", None, at(T0, "198.51.100.7", NEW_YORK))
        .unwrap();
    let alerts = fleet
        .observe_connection("dev-1", None, at(T0 + 3_600, "203.0.113.9", LOS_ANGELES))
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        matches!(alerts[0].kind, AlertKind::ImpossibleTravel { speed_kmh } if (3_900..4_000).contains(&speed_kmh))
    );

    let mut fleet = fleet_with(GeoConfig::default());
    fleet
        .observe_connection("dev-1", None, at(T0, "198.51.100.7", NEW_YORK))
        .unwrap();
    let alerts = fleet
        .observe_connection(
            "dev-1",
            None,
            at(T0 + 8 * 3_600, "203.0.113.9", LOS_ANGELES),
        )
        .unwrap();
    assert_eq!(alerts, vec![]);
}

fn fleet_with(geo: GeoConfig) -> Fleet {
    let mut fleet = Fleet::new(FleetConfig {
        geo,
        ..FleetConfig::default()
    });
    fleet.register("dev-1", "jetson-orin", "1.4.2");
    fleet
}

#[test]
fn short_hops_and_vpn_exits_do_not_alert() {
    let vpn = GeoConfig {
        allowed_networks: vec!["192.0.2.0/24".parse().unwrap()],
        ..GeoConfig::default()
    };
    let mut fleet = fleet_with(vpn);
    let brooklyn = Point {
        lat: 40.6782,
        lon: -73.9442,
    };
    fleet
        .observe_connection("dev-1", None, at(T0, "198.51.100.7", NEW_YORK))
        .unwrap();
    // 6 km in one second: below the minimum distance.
    assert_eq!(
        fleet
            .observe_connection("dev-1", None, at(T0 + 1, "198.51.100.8", brooklyn))
            .unwrap(),
        vec![]
    );
    // Through the VPN exit, "in Los Angeles" a minute later.
    assert_eq!(
        fleet
            .observe_connection("dev-1", None, at(T0 + 61, "192.0.2.44", LOS_ANGELES))
            .unwrap(),
        vec![]
    );
}

#[test]
fn expected_area_circle_and_polygon() {
    let circle = Area::Circle {
        center: NEW_YORK,
        radius_km: 50.0,
    };
    assert!(circle.contains(&Point {
        lat: 40.6782,
        lon: -73.9442
    }));
    assert!(!circle.contains(&LOS_ANGELES));
    let colorado = Area::Polygon {
        vertices: vec![
            Point {
                lat: 41.0,
                lon: -109.05,
            },
            Point {
                lat: 41.0,
                lon: -102.05,
            },
            Point {
                lat: 37.0,
                lon: -102.05,
            },
            Point {
                lat: 37.0,
                lon: -109.05,
            },
        ],
    };
    assert!(colorado.contains(&Point {
        lat: 39.7392,
        lon: -104.9903
    })); // Denver
    assert!(!colorado.contains(&Point {
        lat: 40.7608,
        lon: -111.8910
    })); // Salt Lake City

    let mut fleet = fleet();
    let alerts = fleet
        .observe_connection("dev-1", Some(&circle), at(T0, "198.51.100.7", LOS_ANGELES))
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::OutsideArea);
}

#[test]
fn a_cloned_certificate_is_seen_from_two_networks_at_once() {
    let mut fleet = fleet();
    let nowhere = |t, ip: &str| Sighting {
        at: t,
        network: ip.parse().unwrap(),
        place: None,
    };
    // The same NAT'd site changing its address is not a clone.
    assert_eq!(
        fleet
            .observe_connection("dev-1", None, nowhere(T0, "198.51.100.7"))
            .unwrap(),
        vec![]
    );
    assert_eq!(
        fleet
            .observe_connection("dev-1", None, nowhere(T0 + 5, "198.51.100.9"))
            .unwrap(),
        vec![]
    );
    let alerts = fleet
        .observe_connection("dev-1", None, nowhere(T0 + 10, "203.0.113.50"))
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].kind.clone(), alerts[0].severity),
        (AlertKind::ClonedCertificate, Severity::Critical)
    );
    // An hour later from yet another network: a move, not a clone.
    assert_eq!(
        fleet
            .observe_connection("dev-1", None, nowhere(T0 + 3_610, "192.0.2.1"))
            .unwrap(),
        vec![]
    );
}

/// 1,000 healthy devices, a simulated week of two metrics every 10 minutes, each device with
/// its own phase, level and noise: the number of alerts stays a handful.
#[test]
fn a_healthy_fleet_raises_almost_no_alerts_in_a_week() {
    let mut fleet = Fleet::new(FleetConfig::default());
    let mut noise = Noise(42);
    let devices: Vec<(String, f64, f64)> = (0..1_000)
        .map(|d| {
            (
                format!("dev-{d:04}"),
                noise.next() * 0.2,
                0.5 + noise.next(),
            )
        })
        .collect();
    for (id, _, _) in &devices {
        fleet.register(id, "jetson-orin", "1.4.2");
    }
    let points_per_device = 7 * 86_400 / STEP;
    let mut alerts = Vec::new();
    for i in 0..points_per_device {
        let t = T0 + i * STEP;
        for (id, phase, scale) in &devices {
            let rate = scale * healthy(&mut noise, *phase, t);
            let temp = 55.0 + 3.0 * scale * (rate / 100.0) + 0.8 * noise.gauss();
            alerts.extend(fleet.observe_metric(id, "inference_rate", t, rate).unwrap());
            alerts.extend(fleet.observe_metric(id, "soc_temp_c", t, temp).unwrap());
        }
    }
    let points = 2 * points_per_device as usize * devices.len();
    eprintln!("{} alerts over {points} healthy points", alerts.len());
    assert!(
        alerts.len() <= 5,
        "{} false alarms: {:?}",
        alerts.len(),
        &alerts[..alerts.len().min(5)]
    );
}
