#!/usr/bin/env python3
"""Generate the scikit-learn reference values that kestrel-metrics is tested against.

Usage (from the repository root):

    pip install scikit-learn numpy
    python3 tools/metrics_fixtures.py [--out crates/kestrel-metrics/tests/fixtures]

Writes small JSON files (inputs and the values scikit-learn computes from them) that
`crates/kestrel-metrics/tests/sklearn_fixtures.rs` reads; every value there must agree
within 1e-9. The data are drawn from seeded generators, so reruns give the same files
for the same scikit-learn and NumPy versions (recorded in each file).

Cases:
  binary_ties        scores rounded to one decimal: many tied scores
  binary_rare        1 % positives, 2 000 samples
  binary_weighted    tied scores with sample weights, some of them zero
  binary_all_tied    every score equal
  multiclass_ties    4 classes, probabilities with argmax ties (lowest index wins)
  multiclass_weighted 3 classes with sample weights
  multiclass_missing 3 classes, one never predicted (zero division)
  segmentation       5 classes, ignore label 255, one class absent
"""

import argparse
import json
import os
import warnings

import numpy as np
import sklearn
from sklearn import metrics as skm

warnings.simplefilter("ignore")  # zero-division and undefined-metric warnings are part of the cases

HEADER = {"generator": "tools/metrics_fixtures.py", "sklearn": sklearn.__version__, "numpy": np.__version__}


def floats(a):
    return [float(x) for x in np.asarray(a, dtype=float).ravel()]


def ints(a):
    return [int(x) for x in np.asarray(a).ravel()]


def binary_case(name, y, s, w=None, threshold=0.5, full_pr=True):
    y = np.asarray(y, dtype=int)
    s = np.asarray(s, dtype=float)
    fpr, tpr, th = skm.roc_curve(y, s, sample_weight=w)
    fpr_all, tpr_all, th_all = skm.roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    prec, rec, pth = skm.precision_recall_curve(y, s, sample_weight=w)
    assert np.isinf(th[0]) and np.isinf(th_all[0])
    y_pred = (s >= threshold).astype(int)
    case = {
        "name": name,
        "y_true": ints(y),
        "scores": floats(s),
        "sample_weight": None if w is None else floats(w),
        "threshold": threshold,
        "expected": {
            "roc_curve": {"fpr": floats(fpr), "tpr": floats(tpr), "thresholds_after_inf": floats(th[1:])},
            "roc_curve_all_points": {
                "fpr": floats(fpr_all),
                "tpr": floats(tpr_all),
                "thresholds_after_inf": floats(th_all[1:]),
            },
            "roc_auc": float(skm.roc_auc_score(y, s, sample_weight=w)),
            "average_precision": float(skm.average_precision_score(y, s, sample_weight=w)),
            "pr_auc": float(skm.auc(rec, prec)),
            "confusion_matrix": floats(skm.confusion_matrix(y, y_pred, labels=[0, 1], sample_weight=w)),
            "accuracy": float(skm.accuracy_score(y, y_pred, sample_weight=w)),
            "precision": float(skm.precision_score(y, y_pred, sample_weight=w)),
            "recall": float(skm.recall_score(y, y_pred, sample_weight=w)),
            "f1": float(skm.f1_score(y, y_pred, sample_weight=w)),
            "f2": float(skm.fbeta_score(y, y_pred, beta=2.0, sample_weight=w)),
            "f05": float(skm.fbeta_score(y, y_pred, beta=0.5, sample_weight=w)),
        },
    }
    if full_pr:
        case["expected"]["pr_curve"] = {"precision": floats(prec), "recall": floats(rec), "thresholds": floats(pth)}
    return case


def prf_block(y, y_pred, labels, w):
    out = {}
    for avg in ["micro", "macro", "weighted"]:
        p, r, f, _ = skm.precision_recall_fscore_support(
            y, y_pred, labels=labels, average=avg, sample_weight=w, zero_division="warn"
        )
        out[avg] = {
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "f2": float(skm.fbeta_score(y, y_pred, beta=2.0, labels=labels, average=avg, sample_weight=w)),
            "f05": float(skm.fbeta_score(y, y_pred, beta=0.5, labels=labels, average=avg, sample_weight=w)),
        }
    p, r, f, sup = skm.precision_recall_fscore_support(y, y_pred, labels=labels, average=None, sample_weight=w)
    out["per_class"] = {"precision": floats(p), "recall": floats(r), "f1": floats(f), "support": floats(sup)}
    return out


def multiclass_case(name, y, probs, w=None):
    y = np.asarray(y, dtype=int)
    probs = np.asarray(probs, dtype=float)
    k = probs.shape[1]
    labels = list(range(k))
    y_pred = np.argmax(probs, axis=1)  # lowest index wins ties
    rep = skm.classification_report(
        y, y_pred, labels=labels, sample_weight=w, output_dict=True, zero_division="warn"
    )
    report = {
        "per_class": [
            {key: float(rep[str(c)][key]) for key in ["precision", "recall", "f1-score", "support"]} for c in labels
        ],
        "accuracy": float(rep["accuracy"]) if "accuracy" in rep else float(rep["micro avg"]["f1-score"]),
        "macro_avg": {key: float(rep["macro avg"][key]) for key in ["precision", "recall", "f1-score", "support"]},
        "weighted_avg": {
            key: float(rep["weighted avg"][key]) for key in ["precision", "recall", "f1-score", "support"]
        },
    }
    try:
        ovr_macro = float(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=labels, sample_weight=w))
        ovr_weighted = float(
            skm.roc_auc_score(y, probs, multi_class="ovr", average="weighted", labels=labels, sample_weight=w)
        )
    except ValueError:
        ovr_macro = ovr_weighted = None
    per_class_auc = []
    for c in labels:
        yc = (y == c).astype(int)
        per_class_auc.append(float(skm.roc_auc_score(yc, probs[:, c], sample_weight=w)) if 0 < yc.sum() < len(y) else None)
    return {
        "name": name,
        "n_classes": k,
        "y_true": ints(y),
        "probs": floats(probs),
        "sample_weight": None if w is None else floats(w),
        "expected": {
            "y_pred": ints(y_pred),
            "confusion_matrix": floats(skm.confusion_matrix(y, y_pred, labels=labels, sample_weight=w)),
            "accuracy": float(skm.accuracy_score(y, y_pred, sample_weight=w)),
            "prf": prf_block(y, y_pred, labels, w),
            "classification_report": report,
            "top_k_accuracy": {
                str(kk): float(skm.top_k_accuracy_score(y, probs, k=kk, labels=labels, sample_weight=w))
                for kk in range(1, k + 1)
            },
            "log_loss": float(skm.log_loss(y, probs, labels=labels, sample_weight=w)),
            "roc_auc_ovr_macro": ovr_macro,
            "roc_auc_ovr_weighted": ovr_weighted,
            "roc_auc_ovr_per_class": per_class_auc,
        },
    }


def segmentation_case(rng):
    k, n, ignore = 5, 2500, 255
    y = rng.choice([0, 1, 2, 4], size=n, p=[0.5, 0.25, 0.15, 0.10])  # class 3 never present
    y_pred = np.where(rng.random(n) < 0.7, y, rng.choice([0, 1, 2, 4], size=n))
    y_pred[rng.random(n) < 0.02] = 3  # but sometimes predicted
    y[rng.random(n) < 0.05] = ignore
    keep = y != ignore
    yt, yp = y[keep], y_pred[keep]
    labels = list(range(k))
    cm = skm.confusion_matrix(yt, yp, labels=labels)
    present = [c for c in labels if cm[c, :].sum() + cm[:, c].sum() > 0]
    jac = skm.jaccard_score(yt, yp, labels=labels, average=None, zero_division=0)
    w = np.round(rng.uniform(0.5, 2.0, size=int(keep.sum())), 2)
    return {
        "name": "segmentation",
        "n_classes": k,
        "ignore_index": ignore,
        "y_true": ints(y),
        "y_pred": ints(y_pred),
        "kept_weight": floats(w),
        "expected": {
            "confusion_matrix": floats(cm),
            "iou_per_class": [float(jac[c]) if c in present else None for c in labels],
            "miou": float(skm.jaccard_score(yt, yp, labels=present, average="macro")),
            "pixel_accuracy": float(skm.accuracy_score(yt, yp)),
            # Weighted variant over the kept pixels (no ignore label involved).
            "weighted_confusion_matrix": floats(skm.confusion_matrix(yt, yp, labels=labels, sample_weight=w)),
            "weighted_iou_per_class": floats(
                skm.jaccard_score(yt, yp, labels=labels, average=None, sample_weight=w, zero_division=0)
            ),
        },
    }


def row_probs(rng, n, k, y, boost, levels=None):
    """Rows that sum to one; with `levels`, integer weights over their sum, so equal entries tie exactly."""
    if levels is None:
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), y] += boost
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)
    a = rng.integers(0, levels, size=(n, k)).astype(float)
    a[np.arange(n), y] += rng.integers(0, 2, size=n)
    a[a.sum(axis=1) == 0, 0] = 1.0
    return a / a.sum(axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join("crates", "kestrel-metrics", "tests", "fixtures"))
    args = ap.parse_args()
    rng = np.random.default_rng(20261128)

    binary = []
    n = 200
    y = (rng.random(n) < 0.4).astype(int)
    s = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), 1)
    binary.append(binary_case("binary_ties", y, s))

    n = 2000
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, size=20, replace=False)] = 1  # exactly 1 % positives
    s = np.round(1 / (1 + np.exp(-(rng.normal(size=n) + 2.0 * y - 3.0))), 3)
    binary.append(binary_case("binary_rare", y, s))

    n = 150
    y = (rng.random(n) < 0.5).astype(int)
    s = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1), 2)
    w = rng.uniform(0.1, 3.0, size=n)
    w[rng.random(n) < 0.1] = 0.0
    binary.append(binary_case("binary_weighted", y, s, w))

    y = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 1])
    binary.append(binary_case("binary_all_tied", y, np.full(10, 0.3)))

    multiclass = []
    n, k = 300, 4
    y = rng.integers(0, k, size=n)
    probs = row_probs(rng, n, k, y, 0, levels=3)
    mc = multiclass_case("multiclass_ties", y, probs)
    ties = sum(1 for row in probs if (row == row.max()).sum() > 1)
    assert ties > 20, ties
    multiclass.append(mc)

    n, k = 200, 3
    y = rng.integers(0, k, size=n)
    probs = row_probs(rng, n, k, y, 1.0)
    w = rng.uniform(0.2, 2.5, size=n)
    multiclass.append(multiclass_case("multiclass_weighted", y, probs, w))

    n, k = 120, 3
    y = rng.integers(0, k, size=n)
    probs = row_probs(rng, n, k, y, 1.2)
    probs[:, 2] = 0.5 * np.minimum(probs[:, 0], probs[:, 1])  # class 2 is never the argmax
    probs = probs / probs.sum(axis=1, keepdims=True)
    mc = multiclass_case("multiclass_missing", y, probs)
    assert 2 not in mc["expected"]["y_pred"]
    multiclass.append(mc)

    os.makedirs(args.out, exist_ok=True)
    files = {
        "binary.json": {**HEADER, "cases": binary},
        "multiclass.json": {**HEADER, "cases": multiclass},
        "segmentation.json": {**HEADER, "cases": [segmentation_case(rng)]},
    }
    for fname, obj in files.items():
        path = os.path.join(args.out, fname)
        with open(path, "w") as f:
            json.dump(obj, f, separators=(",", ":"), allow_nan=False)
            f.write("\n")
        print(f"{path}: {os.path.getsize(path) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
