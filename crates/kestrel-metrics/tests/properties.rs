//! Properties that must hold for any input: ROC-AUC is a rank statistic
//! (invariant under strictly increasing transforms, equal to Mann–Whitney U
//! over P·N with ties counting one half), streaming equals one pass (also
//! through the accumulators' serialised form), and the sorted curve equals a
//! naive one.

use kestrel_metrics::{
    pr, roc, BinaryAccumulator, BinaryCurve, ClassificationAccumulator, ConfusionMatrix,
    SegmentationAccumulator,
};
use proptest::prelude::*;

/// Scores on a small integer grid (so ties are common) with labels; at least
/// one positive and one negative.
fn labelled_scores() -> impl Strategy<Value = (Vec<f64>, Vec<bool>)> {
    prop::collection::vec((-20i32..20, any::<bool>()), 2..700).prop_map(|v| {
        let mut s: Vec<f64> = v.iter().map(|p| f64::from(p.0)).collect();
        let mut y: Vec<bool> = v.iter().map(|p| p.1).collect();
        // Force both classes.
        y[0] = true;
        y[1] = false;
        s.truncate(y.len());
        (s, y)
    })
}

fn mann_whitney(s: &[f64], y: &[bool], w: Option<&[f64]>) -> f64 {
    let wt = |i: usize| w.map_or(1.0, |w| w[i]);
    let (mut u, mut p, mut n) = (0.0, 0.0, 0.0);
    for (i, &positive) in y.iter().enumerate() {
        if positive {
            p += wt(i);
        } else {
            n += wt(i);
        }
    }
    for i in (0..s.len()).filter(|&i| y[i]) {
        for j in (0..s.len()).filter(|&j| !y[j]) {
            let pair = wt(i) * wt(j);
            if s[i] > s[j] {
                u += pair;
            } else if s[i] == s[j] {
                u += 0.5 * pair;
            }
        }
    }
    u / (p * n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn auc_is_invariant_under_monotone_transforms((s, y) in labelled_scores()) {
        let base = roc::roc_auc(&y, &s, None).unwrap();
        let transforms: [fn(f64) -> f64; 4] = [
            |x| 3.0 * x + 7.0,
            |x| x * x * x + x,
            |x| (x / 8.0).exp(),
            |x| x.atan(),
        ];
        for t in transforms {
            let ts: Vec<f64> = s.iter().map(|&x| t(x)).collect();
            prop_assert_eq!(roc::roc_auc(&y, &ts, None).unwrap(), base);
            prop_assert_eq!(
                pr::average_precision(&y, &ts, None).unwrap(),
                pr::average_precision(&y, &s, None).unwrap()
            );
        }
        // A strictly decreasing transform mirrors the AUC.
        let neg: Vec<f64> = s.iter().map(|&x| -x).collect();
        prop_assert!((roc::roc_auc(&y, &neg, None).unwrap() - (1.0 - base)).abs() < 1e-12);
    }

    #[test]
    fn auc_equals_mann_whitney_u((s, y) in labelled_scores()) {
        let auc = roc::roc_auc(&y, &s, None).unwrap();
        prop_assert!((auc - mann_whitney(&s, &y, None)).abs() < 1e-12);
        prop_assert!((0.0..=1.0).contains(&auc));
    }

    #[test]
    fn weighted_auc_equals_weighted_mann_whitney(
        (s, y) in labelled_scores(),
        seed in any::<u64>(),
    ) {
        let mut state = seed | 1;
        let w: Vec<f64> = (0..s.len()).map(|_| {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            0.1 + (state % 1000) as f64 / 250.0
        }).collect();
        let auc = roc::roc_auc(&y, &s, Some(&w)).unwrap();
        prop_assert!((auc - mann_whitney(&s, &y, Some(&w))).abs() < 1e-9);
    }

    #[test]
    fn streaming_equals_one_pass((s, y) in labelled_scores(), cut in 0usize..700) {
        let cut = cut.min(s.len());
        let mut a = BinaryAccumulator::new();
        a.update(&y[..cut], &s[..cut]).unwrap();
        let mut b = BinaryAccumulator::new();
        b.update(&y[cut..], &s[cut..]).unwrap();
        a.merge(&b);
        prop_assert_eq!(a.roc_auc().unwrap(), roc::roc_auc(&y, &s, None).unwrap());
        prop_assert_eq!(a.average_precision().unwrap(), pr::average_precision(&y, &s, None).unwrap());
        prop_assert_eq!(a.curve().unwrap(), BinaryCurve::new(&y, &s, None).unwrap());

        let yl: Vec<u8> = y.iter().map(|&b| u8::from(b)).collect();
        let pl: Vec<u8> = s.iter().map(|&x| u8::from(x >= 0.0)).collect();
        let mut m = ConfusionMatrix::from_labels(&yl[..cut], &pl[..cut], 2, None).unwrap();
        m.merge(&ConfusionMatrix::from_labels(&yl[cut..], &pl[cut..], 2, None).unwrap()).unwrap();
        prop_assert_eq!(m, ConfusionMatrix::from_labels(&yl, &pl, 2, None).unwrap());
    }

    #[test]
    fn curve_matches_a_naive_one((s, y) in labelled_scores()) {
        let c = BinaryCurve::new(&y, &s, None).unwrap();
        let mut distinct: Vec<f64> = s.clone();
        distinct.sort_by(|a, b| b.total_cmp(a));
        distinct.dedup();
        prop_assert_eq!(c.thresholds(), &distinct[..]);
        for (i, &t) in distinct.iter().enumerate() {
            let tp = s.iter().zip(&y).filter(|(&x, &l)| l && x >= t).count() as f64;
            let fp = s.iter().zip(&y).filter(|(&x, &l)| !l && x >= t).count() as f64;
            prop_assert_eq!(c.tps()[i], tp);
            prop_assert_eq!(c.fps()[i], fp);
        }
    }

    #[test]
    fn continuous_scores_equal_mann_whitney_u(
        v in prop::collection::vec((-1e6f64..1e6, any::<bool>()), 300..3000)
    ) {
        let s: Vec<f64> = v.iter().map(|p| p.0).collect();
        let mut y: Vec<bool> = v.iter().map(|p| p.1).collect();
        y[0] = true;
        y[1] = false;
        let auc = roc::roc_auc(&y, &s, None).unwrap();
        prop_assert!((auc - mann_whitney(&s, &y, None)).abs() < 1e-12);
    }

    #[test]
    fn serialised_parts_merge_to_one_pass(
        rows in prop::collection::vec((0u8..3, 0.01f32..1.0, 0.01f32..1.0, 0.01f32..1.0), 1..200),
        cuts in prop::collection::vec(0usize..200, 0..4),
    ) {
        // Softmax-like rows in f32, as evaluation produces them.
        let labels: Vec<u8> = rows.iter().map(|r| r.0).collect();
        let probs: Vec<f32> = rows
            .iter()
            .flat_map(|&(_, a, b, c)| [a / (a + b + c), b / (a + b + c), c / (a + b + c)])
            .collect();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(rows.len())).collect();
        cuts.push(0);
        cuts.push(rows.len());
        cuts.sort_unstable();
        let mut merged: Option<ClassificationAccumulator> = None;
        let mut merged_seg: Option<SegmentationAccumulator> = None;
        for w in cuts.windows(2) {
            let mut part = ClassificationAccumulator::new(3).unwrap();
            part.update(&labels[w[0]..w[1]], &probs[3 * w[0]..3 * w[1]]).unwrap();
            let mut seg = SegmentationAccumulator::new(3).unwrap();
            let pred: Vec<u8> = probs[3 * w[0]..3 * w[1]]
                .chunks_exact(3)
                .map(|r| kestrel_metrics::argmax(&r.iter().map(|&p| f64::from(p)).collect::<Vec<_>>()) as u8)
                .collect();
            seg.update(&labels[w[0]..w[1]], &pred).unwrap();
            let part: ClassificationAccumulator =
                serde_json::from_str(&serde_json::to_string(&part).unwrap()).unwrap();
            let seg: SegmentationAccumulator =
                serde_json::from_str(&serde_json::to_string(&seg).unwrap()).unwrap();
            match &mut merged {
                None => merged = Some(part),
                Some(m) => m.merge(&part).unwrap(),
            }
            match &mut merged_seg {
                None => merged_seg = Some(seg),
                Some(m) => m.merge(&seg).unwrap(),
            }
        }
        let mut whole = ClassificationAccumulator::new(3).unwrap();
        whole.update(&labels, &probs).unwrap();
        let merged = merged.unwrap();
        prop_assert_eq!(merged.summary().unwrap(), whole.summary().unwrap());
        prop_assert_eq!(merged.confusion(), whole.confusion());
        let merged_seg = merged_seg.unwrap();
        prop_assert_eq!(merged_seg.confusion(), whole.confusion());
    }
}
