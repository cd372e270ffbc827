#!/usr/bin/env python3
"""Trains the reference MLP on scikit-learn's digits data set and writes it as safetensors.

The model is the one Edgeward's watermark and shuffle evaluation uses: 64 inputs (8x8
pixels scaled to [0, 1]) -> H hidden ReLU units -> 10 classes, stored as `fc1.weight`
[H x 64], `fc1.bias` [H], `fc2.weight` [10 x H], `fc2.bias` [10] (F32). Training is plain
numpy (mini-batch SGD with momentum on the cross-entropy) so that the fine-tuning attack of
the evaluation runs the very same loop. The digits data ship inside scikit-learn: nothing
is downloaded.

    train_digits.py OUT.safetensors [--hidden 128] [--epochs 40] [--seed 0]
    train_digits.py --accuracy MODEL.safetensors          # prints the test accuracy
    train_digits.py --finetune IN OUT [--epochs 5]        # the fine-tuning attack
    train_digits.py --predict MODEL --inputs X.npy        # class predictions as JSON
"""

import argparse
import json
import sys

import numpy as np
from safetensors.numpy import load_file, save_file
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

# The split is fixed so that every model of the evaluation is measured on the same test set.
SPLIT_SEED = 1234
TEST_FRACTION = 0.3


def dataset():
    """(x_train, y_train, x_test, y_test): pixels scaled to [0, 1], a fixed stratified split."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    return x_tr, y_tr, x_te, y_te


def attacker_half(x, y):
    """The half of the training data the fine-tuning attacker is assumed to hold."""
    rng = np.random.default_rng(99)
    idx = rng.permutation(len(x))[: len(x) // 2]
    return x[idx], y[idx]


def init(hidden, rng):
    """He-initialised parameters."""
    return {
        "fc1.weight": (rng.standard_normal((hidden, 64)) * np.sqrt(2.0 / 64)).astype(np.float32),
        "fc1.bias": np.zeros(hidden, np.float32),
        "fc2.weight": (rng.standard_normal((10, hidden)) * np.sqrt(2.0 / hidden)).astype(np.float32),
        "fc2.bias": np.zeros(10, np.float32),
    }


def logits(p, x):
    h = np.maximum(x @ p["fc1.weight"].T + p["fc1.bias"], 0.0)
    return h @ p["fc2.weight"].T + p["fc2.bias"]


def predict(p, x):
    return np.argmax(logits(p, x), axis=1)


def accuracy(p, x, y):
    return float(np.mean(predict(p, x) == y))


def train(p, x, y, epochs, rng, lr=0.05, momentum=0.9, batch=32, weight_decay=1e-4):
    """Mini-batch SGD with momentum on softmax cross-entropy; updates `p` in place."""
    vel = {k: np.zeros_like(v) for k, v in p.items()}
    n = len(x)
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            xb, yb = x[idx], y[idx]
            pre = xb @ p["fc1.weight"].T + p["fc1.bias"]
            h = np.maximum(pre, 0.0)
            z = h @ p["fc2.weight"].T + p["fc2.bias"]
            z -= z.max(axis=1, keepdims=True)
            prob = np.exp(z)
            prob /= prob.sum(axis=1, keepdims=True)
            prob[np.arange(len(yb)), yb] -= 1.0
            dz = prob / len(yb)
            grads = {
                "fc2.weight": dz.T @ h,
                "fc2.bias": dz.sum(axis=0),
            }
            dh = (dz @ p["fc2.weight"]) * (pre > 0)
            grads["fc1.weight"] = dh.T @ xb
            grads["fc1.bias"] = dh.sum(axis=0)
            for k in p:
                g = grads[k]
                if k.endswith("weight"):
                    g = g + weight_decay * p[k]
                vel[k] = momentum * vel[k] - lr * g
                p[k] = (p[k] + vel[k]).astype(np.float32)
    return p


def train_new(hidden, epochs, seed):
    x_tr, y_tr, _, _ = dataset()
    rng = np.random.default_rng(seed)
    return train(init(hidden, rng), x_tr, y_tr, epochs, rng)


def load(path):
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in load_file(path).items()}


def save(p, path):
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in p.items()}, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", help="where to write the trained model")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--accuracy", metavar="MODEL")
    ap.add_argument("--finetune", nargs=2, metavar=("IN", "OUT"))
    ap.add_argument("--predict", metavar="MODEL")
    ap.add_argument("--inputs", metavar="X.npy")
    a = ap.parse_args()
    x_tr, y_tr, x_te, y_te = dataset()
    if a.accuracy:
        print(json.dumps({"accuracy": accuracy(load(a.accuracy), x_te, y_te)}))
    elif a.finetune:
        p = load(a.finetune[0])
        xa, ya = attacker_half(x_tr, y_tr)
        train(p, xa, ya, a.epochs if a.epochs != 40 else 5, np.random.default_rng(a.seed))
        save(p, a.finetune[1])
    elif a.predict:
        x = np.load(a.inputs).astype(np.float32)
        print(json.dumps({"predictions": predict(load(a.predict), x).tolist()}))
    elif a.out:
        p = train_new(a.hidden, a.epochs, a.seed)
        save(p, a.out)
        print(json.dumps({"accuracy": accuracy(p, x_te, y_te), "hidden": a.hidden}))
    else:
        ap.print_usage(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
