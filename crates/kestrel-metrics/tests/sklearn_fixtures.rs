//! Every metric against values computed by scikit-learn (`tools/metrics_fixtures.py`),
//! within 1e-9.

use kestrel_metrics::classification::{
    averaged_scores, classification_report, per_class_scores, Average, ReportLine,
};
use kestrel_metrics::predict::{argmax_rows, threshold_predictions};
use kestrel_metrics::{
    iou, log_loss, ovr, pr, roc, top_k, BinaryAccumulator, ClassificationAccumulator,
    ConfusionMatrix, Predictions, Report, SegmentationAccumulator,
};
use serde_json::Value;

const TOL: f64 = 1e-9;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn num(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, found {v}"))
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, found {v}"))
        .iter()
        .map(num)
        .collect()
}

fn opt_nums(v: &Value) -> Vec<Option<f64>> {
    v.as_array().unwrap().iter().map(Value::as_f64).collect()
}

fn labels(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn weights(case: &Value) -> Option<Vec<f64>> {
    case.get("sample_weight").filter(|w| !w.is_null()).map(nums)
}

#[track_caller]
fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= TOL,
        "{what}: kestrel {got:?}, scikit-learn {want:?}"
    );
}

#[track_caller]
fn close_all(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: kestrel has {} values, scikit-learn {}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        close(*g, *w, &format!("{what}[{i}]"));
    }
}

/// Checks each `(what, kestrel's value, scikit-learn's value)` with [`close`], naming it
/// `"{prefix} {what}"`.
#[track_caller]
fn close_each(prefix: &str, checks: &[(&str, f64, &Value)]) {
    for &(what, got, want) in checks {
        close(got, num(want), &format!("{prefix} {what}"));
    }
}

/// Checks each `(what, kestrel's values, scikit-learn's values)` with [`close_all`], naming it
/// `"{prefix} {what}"`.
#[track_caller]
fn close_all_each(prefix: &str, checks: &[(&str, &[f64], &Value)]) {
    for &(what, got, want) in checks {
        close_all(got, &nums(want), &format!("{prefix} {what}"));
    }
}

/// Checks a line of `classification_report` against scikit-learn's (`f1-score` is its F1).
#[track_caller]
fn close_report_line(prefix: &str, line: &ReportLine, want: &Value) {
    close_each(
        prefix,
        &[
            ("precision", line.precision, &want["precision"]),
            ("recall", line.recall, &want["recall"]),
            ("f1", line.f1, &want["f1-score"]),
            ("support", line.support, &want["support"]),
        ],
    );
}

fn flat(rows: Vec<Vec<f64>>) -> Vec<f64> {
    rows.into_iter().flatten().collect()
}

#[test]
fn binary_ranking_metrics() {
    let data = fixture("binary.json");
    for case in data["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let y: Vec<bool> = labels(&case["y_true"]).iter().map(|&v| v == 1).collect();
        let s = nums(&case["scores"]);
        let w = weights(case);
        let w = w.as_deref();
        let e = &case["expected"];

        for (key, drop) in [("roc_curve", true), ("roc_curve_all_points", false)] {
            let r = roc::roc_curve(&y, &s, w, drop).unwrap();
            assert!(r.thresholds[0].is_infinite() && r.thresholds[0] > 0.0);
            let want = &e[key];
            close_all_each(
                &format!("{name} {key}"),
                &[
                    ("fpr", &r.fpr, &want["fpr"]),
                    ("tpr", &r.tpr, &want["tpr"]),
                    (
                        "thresholds",
                        &r.thresholds[1..],
                        &want["thresholds_after_inf"],
                    ),
                ],
            );
        }
        close_each(
            name,
            &[
                ("roc_auc", roc::roc_auc(&y, &s, w).unwrap(), &e["roc_auc"]),
                (
                    "average_precision",
                    pr::average_precision(&y, &s, w).unwrap(),
                    &e["average_precision"],
                ),
                ("pr_auc", pr::pr_auc(&y, &s, w).unwrap(), &e["pr_auc"]),
            ],
        );
        let c = pr::precision_recall_curve(&y, &s, w).unwrap();
        let want = &e["pr_curve"];
        close_all_each(
            &format!("{name} pr"),
            &[
                ("precision", &c.precision, &want["precision"]),
                ("recall", &c.recall, &want["recall"]),
                ("thresholds", &c.thresholds, &want["thresholds"]),
            ],
        );
        // The trapezoid helper on the curve agrees too.
        close(
            kestrel_metrics::trapezoid::auc(&c.recall, &c.precision).unwrap(),
            num(&e["pr_auc"]),
            &format!("{name} auc(recall, precision)"),
        );

        // Streaming in three uneven batches gives the one-pass values.
        let mut acc = BinaryAccumulator::new();
        let cuts = [0, s.len() / 7, s.len() / 2, s.len()];
        let mut parts = Vec::new();
        for win in cuts.windows(2) {
            let (a, b) = (win[0], win[1]);
            let mut part = BinaryAccumulator::new();
            match w {
                Some(w) => part.update_weighted(&y[a..b], &s[a..b], &w[a..b]).unwrap(),
                None => part.update(&y[a..b], &s[a..b]).unwrap(),
            }
            parts.push(part);
        }
        for p in &parts {
            acc.merge(p);
        }
        assert_eq!(
            acc.roc_auc().unwrap(),
            roc::roc_auc(&y, &s, w).unwrap(),
            "{name}"
        );
        assert_eq!(
            acc.average_precision().unwrap(),
            pr::average_precision(&y, &s, w).unwrap(),
            "{name}"
        );
        assert_eq!(
            acc.pr_auc().unwrap(),
            pr::pr_auc(&y, &s, w).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn binary_threshold_metrics() {
    let data = fixture("binary.json");
    for case in data["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let y = labels(&case["y_true"]);
        let s = nums(&case["scores"]);
        let w = weights(case);
        let e = &case["expected"];
        let pred = threshold_predictions(&s, num(&case["threshold"]));
        let cm = ConfusionMatrix::from_labels(&y, &pred, 2, w.as_deref()).unwrap();
        close_all(
            &flat(cm.rows()),
            &nums(&e["confusion_matrix"]),
            &format!("{name} confusion"),
        );
        let bin = Average::Binary { positive: 1 };
        let a = averaged_scores(&cm, 1.0, bin).unwrap();
        let f = |beta| averaged_scores(&cm, beta, bin).unwrap().f_score;
        close_each(
            name,
            &[
                ("accuracy", cm.accuracy().unwrap(), &e["accuracy"]),
                ("precision", a.precision, &e["precision"]),
                ("recall", a.recall, &e["recall"]),
                ("f1", a.f_score, &e["f1"]),
                ("f2", f(2.0), &e["f2"]),
                ("f0.5", f(0.5), &e["f05"]),
            ],
        );

        if w.is_none() {
            // The report of `kestrel metrics` carries the same numbers.
            let p = Predictions::binary(&y, s.clone()).unwrap();
            let r = Report::from_predictions(&p, num(&case["threshold"])).unwrap();
            close_each(
                &format!("{name} report"),
                &[
                    ("accuracy", r.accuracy, &e["accuracy"]),
                    ("precision", r.precision, &e["precision"]),
                    ("recall", r.recall, &e["recall"]),
                    ("f1", r.f1, &e["f1"]),
                    ("tpr", r.tpr.unwrap(), &e["recall"]),
                    ("roc_auc", r.roc_auc.unwrap(), &e["roc_auc"]),
                    (
                        "average_precision",
                        r.average_precision.unwrap(),
                        &e["average_precision"],
                    ),
                    ("pr_auc", r.pr_auc.unwrap(), &e["pr_auc"]),
                ],
            );
            let cmv: Vec<f64> = r.confusion.iter().flatten().map(|&c| c as f64).collect();
            close_all(
                &cmv,
                &nums(&e["confusion_matrix"]),
                &format!("{name} report confusion"),
            );
            let m = nums(&e["confusion_matrix"]);
            let (tn, fp) = (m[0], m[1]);
            close(
                r.fpr.unwrap(),
                fp / (fp + tn),
                &format!("{name} report fpr"),
            );
        }
    }
}

#[test]
fn multiclass_metrics() {
    let data = fixture("multiclass.json");
    for case in data["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let k = case["n_classes"].as_u64().unwrap() as usize;
        let y = labels(&case["y_true"]);
        let probs = nums(&case["probs"]);
        let w = weights(case);
        let w = w.as_deref();
        let e = &case["expected"];

        let pred = argmax_rows(&probs, k);
        assert_eq!(
            pred,
            labels(&e["y_pred"]),
            "{name}: argmax (lowest index wins ties)"
        );
        let cm = ConfusionMatrix::from_labels(&y, &pred, k, w).unwrap();
        close_all(
            &flat(cm.rows()),
            &nums(&e["confusion_matrix"]),
            &format!("{name} confusion"),
        );
        close(
            cm.accuracy().unwrap(),
            num(&e["accuracy"]),
            &format!("{name} accuracy"),
        );

        for (key, avg) in [
            ("micro", Average::Micro),
            ("macro", Average::Macro),
            ("weighted", Average::Weighted),
        ] {
            let want = &e["prf"][key];
            for (fkey, beta) in [("f1", 1.0), ("f2", 2.0), ("f05", 0.5)] {
                let a = averaged_scores(&cm, beta, avg).unwrap();
                if beta == 1.0 {
                    close(
                        a.precision,
                        num(&want["precision"]),
                        &format!("{name} {key} precision"),
                    );
                    close(
                        a.recall,
                        num(&want["recall"]),
                        &format!("{name} {key} recall"),
                    );
                }
                close(a.f_score, num(&want[fkey]), &format!("{name} {key} {fkey}"));
            }
        }
        let pc = per_class_scores(&cm, 1.0).unwrap();
        let want = &e["prf"]["per_class"];
        close_all_each(
            &format!("{name} per-class"),
            &[
                ("precision", &pc.precision, &want["precision"]),
                ("recall", &pc.recall, &want["recall"]),
                ("f1", &pc.f_score, &want["f1"]),
                ("support", &pc.support, &want["support"]),
            ],
        );
        if name == "multiclass_missing" {
            assert!(
                pc.zero_division
                    .iter()
                    .any(|z| z.metric == "precision" && z.class == Some(2)),
                "{name}: the never-predicted class must be reported"
            );
        }

        let rep = classification_report(&cm).unwrap();
        let want = &e["classification_report"];
        for (c, line) in rep.per_class.iter().enumerate() {
            close_report_line(&format!("{name} report[{c}]"), line, &want["per_class"][c]);
        }
        close(
            rep.accuracy,
            num(&want["accuracy"]),
            &format!("{name} report accuracy"),
        );
        for (line, key) in [
            (&rep.macro_avg, "macro_avg"),
            (&rep.weighted_avg, "weighted_avg"),
        ] {
            close_report_line(&format!("{name} {key}"), line, &want[key]);
        }

        for (kk, want) in e["top_k_accuracy"].as_object().unwrap() {
            let kk: usize = kk.parse().unwrap();
            close(
                top_k::top_k_accuracy(&y, &probs, k, kk, w).unwrap(),
                num(want),
                &format!("{name} top-{kk} accuracy"),
            );
        }
        close(
            log_loss::log_loss(&y, &probs, k, w).unwrap(),
            num(&e["log_loss"]),
            &format!("{name} log_loss"),
        );
        let o = ovr::roc_auc_ovr(&y, &probs, k, w).unwrap();
        close_each(
            &format!("{name} ovr"),
            &[
                ("macro", o.macro_avg.unwrap(), &e["roc_auc_ovr_macro"]),
                (
                    "weighted",
                    o.weighted_avg.unwrap(),
                    &e["roc_auc_ovr_weighted"],
                ),
            ],
        );
        let want = opt_nums(&e["roc_auc_ovr_per_class"]);
        for (c, (g, wv)) in o.per_class.iter().zip(&want).enumerate() {
            close(g.unwrap(), wv.unwrap(), &format!("{name} ovr class {c}"));
        }

        if w.is_none() {
            let names: Vec<String> = (0..k).map(|c| c.to_string()).collect();
            let p = Predictions::multiclass(names, &y, probs.clone()).unwrap();
            let r = Report::from_predictions(&p, 0.5).unwrap();
            let macro_ = &e["prf"]["macro"];
            close_each(
                &format!("{name} report"),
                &[
                    ("accuracy", r.accuracy, &e["accuracy"]),
                    ("precision", r.precision, &macro_["precision"]),
                    ("recall", r.recall, &macro_["recall"]),
                    ("f1", r.f1, &macro_["f1"]),
                    (
                        "ovr macro",
                        r.roc_auc_ovr_macro.unwrap(),
                        &e["roc_auc_ovr_macro"],
                    ),
                    (
                        "ovr weighted",
                        r.roc_auc_ovr_weighted.unwrap(),
                        &e["roc_auc_ovr_weighted"],
                    ),
                ],
            );
            assert!(r.roc_auc.is_none() && r.tpr.is_none() && r.fpr.is_none());

            // The training-loop accumulator, fed in batches from two "workers".
            let probs32: Vec<f64> = probs.clone();
            let half = y.len() / 2;
            let mut a = ClassificationAccumulator::new(k).unwrap();
            let mut b = ClassificationAccumulator::new(k).unwrap();
            for (i, chunk) in y[..half].chunks(17).enumerate() {
                let start = i * 17;
                a.update(chunk, &probs32[start * k..(start + chunk.len()) * k])
                    .unwrap();
            }
            b.update(&y[half..], &probs32[half * k..]).unwrap();
            a.merge(&b).unwrap();
            let s = a.summary().unwrap();
            close_each(
                &format!("{name} acc"),
                &[
                    ("accuracy", s.accuracy, &e["accuracy"]),
                    ("macro_f1", s.macro_f1, &macro_["f1"]),
                    (
                        "ovr macro",
                        s.roc_auc_ovr_macro.unwrap(),
                        &e["roc_auc_ovr_macro"],
                    ),
                ],
            );
            let cmv: Vec<f64> = s.confusion.iter().flatten().map(|&c| c as f64).collect();
            close_all(
                &cmv,
                &nums(&e["confusion_matrix"]),
                &format!("{name} acc confusion"),
            );
            let pcw = &e["prf"]["per_class"];
            for (c, row) in s.per_class.iter().enumerate() {
                close_each(
                    &format!("{name} acc class {c}"),
                    &[
                        ("precision", row.precision, &pcw["precision"][c]),
                        ("recall", row.recall, &pcw["recall"][c]),
                        ("f1", row.f1, &pcw["f1"][c]),
                        ("support", row.support as f64, &pcw["support"][c]),
                    ],
                );
            }
        }
    }
}

#[test]
fn segmentation_metrics() {
    let data = fixture("segmentation.json");
    let case = &data["cases"][0];
    let k = case["n_classes"].as_u64().unwrap() as usize;
    let ignore = case["ignore_index"].as_u64().unwrap();
    let y: Vec<u16> = labels(&case["y_true"]).iter().map(|&v| v as u16).collect();
    let p: Vec<u16> = labels(&case["y_pred"]).iter().map(|&v| v as u16).collect();
    let e = &case["expected"];

    let mut a = SegmentationAccumulator::new(k).unwrap();
    let mut b = SegmentationAccumulator::new(k).unwrap();
    let half = y.len() / 3;
    for (yc, pc) in y[..half].chunks(100).zip(p[..half].chunks(100)) {
        a.update(yc, pc).unwrap();
    }
    b.update(&y[half..], &p[half..]).unwrap();
    a.merge(&b).unwrap();
    close_all(
        &flat(a.confusion().rows()),
        &nums(&e["confusion_matrix"]),
        "segmentation confusion",
    );
    let s = a.summary();
    let want = opt_nums(&e["iou_per_class"]);
    assert_eq!(s.iou_per_class.len(), want.len());
    for (c, (g, wv)) in s.iou_per_class.iter().zip(&want).enumerate() {
        match (g, wv) {
            (Some(g), Some(wv)) => close(*g, *wv, &format!("iou class {c}")),
            (None, None) => {}
            _ => panic!("iou class {c}: kestrel {g:?}, scikit-learn {wv:?}"),
        }
    }
    close(s.miou.unwrap(), num(&e["miou"]), "miou");
    close(
        s.pixel_accuracy.unwrap(),
        num(&e["pixel_accuracy"]),
        "pixel accuracy",
    );

    // Weighted IoU from a weighted confusion matrix over the kept pixels.
    let keep: Vec<usize> = (0..y.len())
        .filter(|&i| u64::from(y[i]) != ignore)
        .collect();
    let yt: Vec<u16> = keep.iter().map(|&i| y[i]).collect();
    let yp: Vec<u16> = keep.iter().map(|&i| p[i]).collect();
    let w = nums(&case["kept_weight"]);
    let cm = ConfusionMatrix::from_labels(&yt, &yp, k, Some(&w)).unwrap();
    close_all(
        &flat(cm.rows()),
        &nums(&e["weighted_confusion_matrix"]),
        "weighted confusion",
    );
    let wi = iou::iou(&cm);
    let want = nums(&e["weighted_iou_per_class"]);
    for (c, (g, wv)) in wi.iou_per_class.iter().zip(&want).enumerate() {
        close(g.unwrap(), *wv, &format!("weighted iou class {c}"));
    }
}
