//! `edgeward detect nab` on a slice of the Numenta Anomaly Benchmark (/work/shared/data/nab,
//! or `$EDGEWARD_NAB_DIR`): one result file per data file in NAB's layout, every row scored
//! in [0, 1], the labelled anomaly scored highest; a malformed file and an empty directory
//! are refused with what was wrong.

use crate::common::*;
use std::{fs, path::PathBuf};

fn nab_dir() -> PathBuf {
    let dir = std::env::var_os("EDGEWARD_NAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/data/nab"));
    assert!(
        dir.join("data").is_dir(),
        "{}: NAB data not found (set EDGEWARD_NAB_DIR)",
        dir.display()
    );
    dir
}

/// Copies `category/file` of NAB into `to/data/`.
fn copy(to: &std::path::Path, category: &str, file: &str) {
    let dir = to.join("data").join(category);
    fs::create_dir_all(&dir).expect("mkdir");
    fs::copy(
        nab_dir().join("data").join(category).join(file),
        dir.join(file),
    )
    .expect("copy");
}

/// (timestamp, score) rows of a result file, checking its header and value column.
fn results(path: &std::path::Path) -> Vec<(String, f64)> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l}");
            let score: f64 = f[2].parse().expect("score");
            assert!((0.0..=1.0).contains(&score), "{l}");
            (f[0].to_string(), score)
        })
        .collect()
}

#[test]
fn detect_nab_writes_result_files_and_finds_the_labelled_anomaly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, out) = (tmp.path().join("nab"), tmp.path().join("out"));
    copy(&data, "artificialNoAnomaly", "art_daily_small_noise.csv");
    copy(&data, "artificialWithAnomaly", "art_daily_jumpsup.csv");
    let printed = ok(edgeward()
        .args(["--json", "detect", "nab"])
        .arg(&data)
        .arg("--out")
        .arg(&out));
    let v: serde_json::Value = serde_json::from_str(printed.trim()).expect("json");
    assert_eq!(v["files"], 2, "{v}");
    assert_eq!(v["rows"], 2 * 4032, "{v}");

    let quiet =
        results(&out.join("edgeward/artificialNoAnomaly/edgeward_art_daily_small_noise.csv"));
    let jumps = results(&out.join("edgeward/artificialWithAnomaly/edgeward_art_daily_jumpsup.csv"));
    assert_eq!((quiet.len(), jumps.len()), (4032, 4032));
    // The highest score of the file with an anomaly lies in its labelled window
    // (labels/combined_windows.json: 2014-04-10 16:15 .. 2014-04-12 01:45), and the
    // anomaly-free file never scores that high.
    let (at, top) = jumps
        .iter()
        .skip(750)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("rows");
    assert!(
        ("2014-04-10 16:15:00"..="2014-04-12 01:45:00").contains(&at.as_str()),
        "top score {top} at {at}"
    );
    let quiet_top = quiet.iter().skip(750).map(|r| r.1).fold(0.0, f64::max);
    assert!(
        quiet_top < *top,
        "no-anomaly file scored {quiet_top} >= {top}"
    );
}

#[test]
fn detect_nab_refuses_a_malformed_file_and_an_empty_directory() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data/bad");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(
        dir.join("x.csv"),
        "timestamp,value\n2014-04-01 00:00:00,1.0\n2014-04-01 00:05:00,lots\n",
    )
    .expect("write");
    let err = fails(
        edgeward()
            .args(["detect", "nab"])
            .arg(tmp.path())
            .arg("--out")
            .arg(tmp.path().join("out")),
        1,
    );
    assert!(err.contains("x.csv:3") && err.contains("\"lots\""), "{err}");

    let empty = tempfile::tempdir().expect("tmp");
    let err = fails(
        edgeward()
            .args(["detect", "nab"])
            .arg(empty.path())
            .arg("--out")
            .arg(tmp.path().join("out")),
        2,
    );
    assert!(err.contains("no data files"), "{err}");
}
