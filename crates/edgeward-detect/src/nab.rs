//! The Numenta Anomaly Benchmark harness: runs the baseline over every series of a directory
//! in NAB's layout (`data/<category>/<file>.csv`, header `timestamp,value`) and writes NAB
//! result files (`<out>/<detector>/<category>/<detector>_<file>.csv`), so the detector's
//! quality can be measured on labelled real data with NAB's own scoring rules.
//!
//! Each file is one device-metric, scored in streaming mode with the default parameters:
//! no labels, no look-ahead and nothing NAB hands its own detectors (min/max, file length).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use time::macros::format_description;
use time::PrimitiveDateTime;

use crate::baseline::{Baseline, Params};

/// The detector name in result paths (letters only, as NAB requires).
pub const DETECTOR: &str = "edgeward";

/// Largest data file read (NAB's largest is under 1 MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Why a NAB run failed.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A data file is not in NAB's format.
    #[error("{path}:{line}: {reason}")]
    Format {
        /// The data file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A data file exceeds [`MAX_FILE_BYTES`].
    #[error("{path}: {size} bytes is more than the {MAX_FILE_BYTES} a data file may have")]
    TooLarge {
        /// The data file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The directory holds no data files.
    #[error("{0}: no data files (expected data/<category>/<file>.csv or <category>/<file>.csv)")]
    Empty(PathBuf),
}

/// One series of a NAB data file: timestamps (Unix seconds) and values, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The timestamps as written in the file.
    pub timestamps: Vec<String>,
    /// The timestamps in Unix seconds.
    pub seconds: Vec<i64>,
    /// The values.
    pub values: Vec<f64>,
}

/// What a run wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    /// The directory the results were written under (`<out>/<detector>`).
    pub results: PathBuf,
    /// Data files scored.
    pub files: usize,
    /// Rows scored.
    pub rows: usize,
}

/// Parses a NAB data file (`timestamp,value` header, `YYYY-MM-DD HH:MM:SS,float` rows).
pub fn parse_series(path: &Path, text: &str) -> Result<Series, NabError> {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let bad = |line: usize, reason: String| NabError::Format {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| bad(1, "empty file".into()))?;
    if header.trim() != "timestamp,value" {
        return Err(bad(
            1,
            format!("header is {header:?}, expected \"timestamp,value\""),
        ));
    }
    let mut series = Series {
        timestamps: Vec::new(),
        seconds: Vec::new(),
        values: Vec::new(),
    };
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        let (ts, value) = line
            .split_once(',')
            .ok_or_else(|| bad(n, "expected two comma-separated fields".into()))?;
        let when = PrimitiveDateTime::parse(ts.trim(), &format)
            .map_err(|e| bad(n, format!("timestamp {ts:?}: {e}")))?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| bad(n, format!("value {:?} is not a number", value.trim())))?;
        series.timestamps.push(ts.trim().to_string());
        series.seconds.push(when.assume_utc().unix_timestamp());
        series.values.push(value);
    }
    Ok(series)
}

/// Scores a series in streaming order with one fresh baseline; one score in [0, 1) per row.
pub fn score_series(params: &Params, series: &Series) -> Vec<f32> {
    let mut baseline = Baseline::new();
    series
        .seconds
        .iter()
        .zip(&series.values)
        .map(|(&t, &v)| baseline.update(params, t, v).score)
        .collect()
}

/// The data files under `data_dir` (NAB's root or its `data/` folder), as
/// `(category, file name, path)`, sorted.
pub fn data_files(data_dir: &Path) -> Result<Vec<(String, String, PathBuf)>, NabError> {
    let root = if data_dir.join("data").is_dir() {
        data_dir.join("data")
    } else {
        data_dir.to_path_buf()
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| NabError::Io { path, source }
    };
    let mut files = Vec::new();
    for category in fs::read_dir(&root).map_err(io(&root))? {
        let category = category.map_err(io(&root))?.path();
        if !category.is_dir() {
            continue;
        }
        let Some(cat_name) = category
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        for file in fs::read_dir(&category).map_err(io(&category))? {
            let file = file.map_err(io(&category))?.path();
            let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".csv") && file.is_file() {
                files.push((cat_name.clone(), name.to_string(), file.clone()));
            }
        }
    }
    if files.is_empty() {
        return Err(NabError::Empty(data_dir.to_path_buf()));
    }
    files.sort();
    Ok(files)
}

/// Runs the baseline over every data file under `data_dir` and writes NAB result files under
/// `out_dir/edgeward/`.
pub fn run(params: &Params, data_dir: &Path, out_dir: &Path) -> Result<RunSummary, NabError> {
    let files = data_files(data_dir)?;
    let results = out_dir.join(DETECTOR);
    let mut rows = 0;
    for (category, name, path) in &files {
        let size = fs::metadata(path)
            .map_err(|source| NabError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(NabError::TooLarge {
                path: path.clone(),
                size,
            });
        }
        let text = fs::read_to_string(path).map_err(|source| NabError::Io {
            path: path.clone(),
            source,
        })?;
        let series = parse_series(path, &text)?;
        let scores = score_series(params, &series);
        let dir = results.join(category);
        fs::create_dir_all(&dir).map_err(|source| NabError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut out = String::with_capacity(series.values.len() * 40);
        out.push_str("timestamp,value,anomaly_score\n");
        for ((ts, value), score) in series.timestamps.iter().zip(&series.values).zip(&scores) {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{ts},{value},{score:.9}");
        }
        let target = dir.join(format!("{DETECTOR}_{name}"));
        fs::write(&target, out).map_err(|source| NabError::Io {
            path: target.clone(),
            source,
        })?;
        rows += series.values.len();
    }
    Ok(RunSummary {
        results,
        files: files.len(),
        rows,
    })
}
