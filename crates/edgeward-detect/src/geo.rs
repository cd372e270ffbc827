//! Where a device is: its expected area (a point and radius, or a polygon), impossible travel
//! between consecutive locations, and cloned certificates (one identity used from two
//! networks or places at once). Allow-listed networks (VPN exits, carrier gateways) never
//! raise travel or clone alerts, because their location says nothing about the device.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertKind, Severity};

/// Mean Earth radius (km), as used for great-circle distances.
pub const EARTH_RADIUS_KM: f64 = 6_371.008_8;

/// A place on Earth in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Latitude, degrees north.
    pub lat: f64,
    /// Longitude, degrees east.
    pub lon: f64,
}

impl Point {
    /// A point, if the coordinates are finite and in range.
    pub fn new(lat: f64, lon: f64) -> Option<Point> {
        ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon))
            .then_some(Point { lat, lon })
    }

    /// Great-circle (haversine) distance in km.
    pub fn distance_km(&self, other: &Point) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

/// Where a device is expected to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "shape")]
pub enum Area {
    /// Within `radius_km` of `center`.
    Circle {
        /// The centre.
        center: Point,
        /// The radius in km.
        radius_km: f64,
    },
    /// Inside a polygon (vertices in order; the last joins the first). Edges are straight in
    /// latitude/longitude, which is exact enough for areas of a few hundred km that do not
    /// cross the antimeridian.
    Polygon {
        /// The vertices.
        vertices: Vec<Point>,
    },
}

impl Area {
    /// Whether `p` is inside (the boundary counts as inside for circles).
    pub fn contains(&self, p: &Point) -> bool {
        match self {
            Area::Circle { center, radius_km } => center.distance_km(p) <= *radius_km,
            Area::Polygon { vertices } => {
                // Even-odd ray casting towards increasing longitude.
                let mut inside = false;
                let n = vertices.len();
                for i in 0..n {
                    let (a, b) = (vertices[i], vertices[(i + n - 1) % n]);
                    if (a.lat > p.lat) != (b.lat > p.lat) {
                        let lon = a.lon + (p.lat - a.lat) / (b.lat - a.lat) * (b.lon - a.lon);
                        if p.lon < lon {
                            inside = !inside;
                        }
                    }
                }
                inside
            }
        }
    }
}

/// A network prefix such as `203.0.113.0/24` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?
        };
        Ok(Network { addr, prefix })
    }
}

impl Network {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                same_prefix(u32::from(n).into(), u32::from(*a).into(), 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                same_prefix(u128::from(n), u128::from(*a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    let shift = bits.saturating_sub(prefix.min(bits));
    if shift >= 128 {
        return true;
    }
    (a >> shift) == (b >> shift)
}

/// The "same network" of two addresses for clone detection: the same /24 (IPv4) or /64
/// (IPv6), so a NAT gateway that changes its address does not look like a second place.
pub fn same_site(a: &IpAddr, b: &IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Network {
            addr: *a,
            prefix: 24,
        }
        .contains(b),
        (IpAddr::V6(_), IpAddr::V6(_)) => Network {
            addr: *a,
            prefix: 64,
        }
        .contains(b),
        _ => false,
    }
}

/// Thresholds of the geographic checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoConfig {
    /// Implied speed above which travel is impossible (km/h).
    pub max_speed_kmh: f64,
    /// Jumps shorter than this never count as travel (km): location noise, nearby cells.
    pub min_distance_km: f64,
    /// Networks whose addresses say nothing about where the device is (VPN exits).
    pub allowed_networks: Vec<Network>,
    /// Two sightings of one certificate closer in time than this are "at once" (seconds).
    pub clone_window_seconds: i64,
}

impl Default for GeoConfig {
    fn default() -> Self {
        GeoConfig {
            max_speed_kmh: 1_000.0,
            min_distance_km: 100.0,
            allowed_networks: Vec::new(),
            clone_window_seconds: 60,
        }
    }
}

impl GeoConfig {
    /// Whether `ip` is in an allow-listed network.
    pub fn allowed(&self, ip: &IpAddr) -> bool {
        self.allowed_networks.iter().any(|n| n.contains(ip))
    }
}

/// One report of where a device (or a certificate) was.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sighting {
    /// When (Unix seconds).
    pub at: i64,
    /// The source address of the connection.
    pub network: IpAddr,
    /// The reported or looked-up location, if any.
    pub place: Option<Point>,
}

/// Per-device geographic memory: the last located sighting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GeoState {
    last: Option<Sighting>,
}

impl GeoState {
    /// Checks a sighting against the expected area and the previous sighting; returns the
    /// alerts it raises (outside the area, impossible travel).
    pub fn observe(
        &mut self,
        config: &GeoConfig,
        device: &str,
        area: Option<&Area>,
        sighting: Sighting,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let Some(place) = sighting.place else {
            return alerts;
        };
        if config.allowed(&sighting.network) {
            return alerts;
        }
        if let Some(area) = area {
            if !area.contains(&place) {
                alerts.push(Alert {
                    device: device.to_string(),
                    kind: AlertKind::OutsideArea,
                    severity: Severity::Medium,
                    at: sighting.at,
                    detail: format!(
                        "reported from {:.4},{:.4}, outside its expected area",
                        place.lat, place.lon
                    ),
                });
            }
        }
        if let Some(prev) = self.last.filter(|p| p.at <= sighting.at) {
            if let Some(speed) = travel_speed(config, &prev, &sighting) {
                alerts.push(Alert {
                    device: device.to_string(),
                    kind: AlertKind::ImpossibleTravel {
                        speed_kmh: speed.min(u32::MAX as f64) as u32,
                    },
                    severity: Severity::High,
                    at: sighting.at,
                    detail: format!(
                        "moved {:.0} km in {} s ({speed:.0} km/h, above {:.0} km/h)",
                        prev.place.map(|p| p.distance_km(&place)).unwrap_or(0.0),
                        sighting.at - prev.at,
                        config.max_speed_kmh
                    ),
                });
            }
        }
        if self.last.is_none_or(|p| p.at <= sighting.at) {
            self.last = Some(sighting);
        }
        alerts
    }
}

/// The implied speed between two located sightings, if it is impossible: both located, the
/// distance at least the minimum, and faster than the limit (simultaneous sightings far
/// apart are infinitely fast).
pub fn travel_speed(config: &GeoConfig, a: &Sighting, b: &Sighting) -> Option<f64> {
    let (pa, pb) = (a.place?, b.place?);
    let km = pa.distance_km(&pb);
    if km < config.min_distance_km {
        return None;
    }
    let hours = (b.at - a.at).unsigned_abs() as f64 / 3_600.0;
    let speed = if hours > 0.0 {
        km / hours
    } else {
        f64::INFINITY
    };
    (speed > config.max_speed_kmh).then_some(speed)
}

/// Per-certificate memory for clone detection: the latest sighting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CertificateState {
    last: Option<Sighting>,
}

impl CertificateState {
    /// Records a connection made with the certificate; alerts if the same certificate was
    /// seen from another network or a distant place within the clone window.
    pub fn observe(
        &mut self,
        config: &GeoConfig,
        device: &str,
        sighting: Sighting,
    ) -> Option<Alert> {
        let previous = self.last.replace(sighting);
        let prev = previous?;
        if config.allowed(&sighting.network) || config.allowed(&prev.network) {
            return None;
        }
        if (sighting.at - prev.at).abs() > config.clone_window_seconds {
            return None;
        }
        let other_network = !same_site(&prev.network, &sighting.network);
        let far = match (prev.place, sighting.place) {
            (Some(a), Some(b)) => a.distance_km(&b) >= config.min_distance_km,
            _ => false,
        };
        if !other_network && !far {
            return None;
        }
        Some(Alert {
            device: device.to_string(),
            kind: AlertKind::ClonedCertificate,
            severity: Severity::Critical,
            at: sighting.at,
            detail: format!(
                "the device's certificate was used from {} and {} within {} s",
                prev.network,
                sighting.network,
                (sighting.at - prev.at).abs()
            ),
        })
    }
}
