#!/usr/bin/env python3
"""Score anomaly-detector results with the Numenta Anomaly Benchmark (NAB) rules.

An independent implementation of NAB's scoring (windows with a scaled-sigmoid credit, false
positives weighted by their distance from the previous window, a probationary period, one
threshold per detector and profile chosen over the whole corpus, normalisation against the
null detector). Python standard library only.

    bench/nab_score.py NAB_DIR RESULTS_DIR [--detector NAME] [--json]

NAB_DIR holds data/<category>/<file>.csv, labels/combined_windows.json and
config/profiles.json. RESULTS_DIR holds <detector>/<category>/<detector>_<file>.csv with an
`anomaly_score` column, one row per data row (matched by position). Every data file needs a
result; a missing or short one is an error, never silently skipped.
"""

import argparse
import csv
import json
import math
import os
import sys

PROBATION_PERCENT = 0.15
PROBATION_CAP = 750  # NAB: 0.15 * 5000


def scaled_sigmoid(position):
    """NAB's credit curve: 2*sigmoid(-5*position) - 1, and -1 well past a window."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def normalise_timestamp(text):
    """Labels carry microseconds ('... 00:00:00.000000'); data files do not."""
    text = text.strip()
    if "." in text:
        head, frac = text.split(".", 1)
        if frac.strip("0") == "":
            return head
    return text


def read_column(path, column):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if column not in (reader.fieldnames or []):
            raise SystemExit(f"{path}: no '{column}' column")
        return [row[column] for row in reader]


def row_weights(timestamps, windows, profile, name):
    """Per row: (window id or None, weighted credit if detected), or None in probation.

    Windows are entered at their first timestamp and left after their last; a row in a
    window earns A_TP * sigma(y)/sigma(-1) with y = -(right - i + 1)/width; a row outside
    one costs A_FP * sigma(y) with y measured in window widths past the previous window.
    """
    a_tp, a_fp = profile["tpWeight"], profile["fpWeight"]
    first_index = {}
    for i, t in enumerate(timestamps):
        first_index.setdefault(t, i)
    spans = []
    for start, end in windows:
        start, end = normalise_timestamp(start), normalise_timestamp(end)
        if start not in first_index or end not in first_index:
            raise SystemExit(f"{name}: window {start}..{end} is not in the data file")
        spans.append((start, end))
    max_tp = scaled_sigmoid(-1.0)
    probation = min(math.floor(PROBATION_PERCENT * len(timestamps)), PROBATION_CAP)
    rows = []
    pending = list(spans)
    current = None  # (id, right index, width)
    previous = None  # (right index, width)
    for i, t in enumerate(timestamps):
        if current is None and pending and t == pending[0][0]:
            start, end = pending.pop(0)
            right = first_index[end]
            current = (f"{name}|{start}", right, float(right - first_index[start] + 1), end)
        if current is not None:
            credit = scaled_sigmoid(-(current[1] - i + 1) / current[2]) * a_tp / max_tp
            window = current[0]
        else:
            if previous is None:
                credit = -1.0 * a_fp
            else:
                credit = scaled_sigmoid(abs(previous[0] - i) / (previous[1] - 1.0)) * a_fp
            window = None
        rows.append(None if i < probation else (window, credit))
        if current is not None and t == current[3]:
            previous = (i, current[2])
            current = None
    return rows


def sweep(points, a_fn):
    """Best (raw score, threshold, tp windows, fp rows) over every distinct score.

    `points` are (anomaly score, window id or None, credit). Detections are the rows with
    score >= threshold; a window counts once, with its best (earliest) credit. Ties in the
    raw score go to the higher threshold, as NAB's stable sort does; "no detections"
    (threshold 1.1) is the first candidate.
    """
    points = sorted(points, key=lambda p: p[0], reverse=True)
    window_credit = {}
    for _, window, _ in points:
        if window is not None:
            window_credit[window] = -a_fn
    fp_total = 0.0
    fp_rows = 0
    hit = set()
    total = sum(window_credit.values())
    best = (total, 1.1, 0, 0)
    threshold = 1.1
    for score, window, credit in points:
        if score != threshold:
            current = fp_total + sum(window_credit.values())
            if current > best[0]:
                best = (current, threshold, len(hit), fp_rows)
            threshold = score
        if window is None:
            fp_total += credit
            fp_rows += 1
        else:
            hit.add(window)
            if credit > window_credit[window]:
                window_credit[window] = credit
    current = fp_total + sum(window_credit.values())
    if current > best[0]:
        best = (current, threshold, len(hit), fp_rows)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nab_dir")
    parser.add_argument("results_dir")
    parser.add_argument("--detector", help="detector name (default: the only one present)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    with open(os.path.join(args.nab_dir, "labels", "combined_windows.json")) as f:
        windows = json.load(f)
    with open(os.path.join(args.nab_dir, "config", "profiles.json")) as f:
        profiles = {k: v["CostMatrix"] for k, v in json.load(f).items()}

    detector = args.detector
    if detector is None:
        names = sorted(d for d in os.listdir(args.results_dir)
                       if os.path.isdir(os.path.join(args.results_dir, d)))
        if len(names) != 1:
            raise SystemExit(f"name the detector with --detector (found {names})")
        detector = names[0]

    data_root = os.path.join(args.nab_dir, "data")
    files = sorted(
        f"{category}/{name}"
        for category in os.listdir(data_root)
        if os.path.isdir(os.path.join(data_root, category))
        for name in os.listdir(os.path.join(data_root, category))
        if name.endswith(".csv")
    )
    corpus = []
    for rel in files:
        if rel not in windows:
            raise SystemExit(f"{rel}: not in the labels")
        category, name = rel.split("/")
        timestamps = [normalise_timestamp(t)
                      for t in read_column(os.path.join(data_root, rel), "timestamp")]
        result = os.path.join(args.results_dir, detector, category, f"{detector}_{name}")
        if not os.path.exists(result):
            raise SystemExit(f"{result}: missing (every data file needs a result)")
        scores = [float(s) for s in read_column(result, "anomaly_score")]
        if len(scores) != len(timestamps):
            raise SystemExit(f"{result}: {len(scores)} rows, the data has {len(timestamps)}")
        if any(not (0.0 <= s <= 1.0) for s in scores):
            raise SystemExit(f"{result}: an anomaly_score outside [0, 1]")
        corpus.append((rel, timestamps, scores))
    n_windows = sum(len(windows[rel]) for rel, _, _ in corpus)

    report = {"detector": detector, "files": len(corpus), "windows": n_windows, "profiles": {}}
    for profile_name, profile in profiles.items():
        points, null_points = [], []
        for rel, timestamps, scores in corpus:
            weights = row_weights(timestamps, windows[rel], profile, rel)
            for score, row in zip(scores, weights):
                if row is not None:
                    points.append((score, row[0], row[1]))
                    null_points.append((0.5, row[0], row[1]))
        raw, threshold, tp, fp = sweep(points, profile["fnWeight"])
        null_raw = sweep(null_points, profile["fnWeight"])[0]
        perfect = profile["tpWeight"] * n_windows
        score = 100.0 * (raw - null_raw) / (perfect - null_raw)
        report["profiles"][profile_name] = {
            "score": round(score, 2),
            "raw": raw,
            "threshold": threshold,
            "windows_detected": tp,
            "false_positive_rows": fp,
        }

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{detector}: {len(corpus)} files, {n_windows} windows")
        for name, p in report["profiles"].items():
            print(f"  {name:<20} {p['score']:7.2f}   threshold {p['threshold']:.6g}"
                  f"   windows {p['windows_detected']}/{n_windows}"
                  f"   false-positive rows {p['false_positive_rows']}")


if __name__ == "__main__":
    sys.exit(main())
