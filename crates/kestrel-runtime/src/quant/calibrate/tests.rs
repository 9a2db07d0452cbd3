use super::*;

// References printed by `tools/calib_fixtures.py` (see its docstring for the exact command):
// onnxruntime 1.32's `HistogramCollector` (ORT_*) and NVIDIA Model Optimizer 0.47's
// `_compute_amax_entropy(hist, edges, 8, unsigned=True)` (MO_*), each on the whole sample at once.
// *_STATS are numpy's min, max and float64 sum of the sample, to check the generator below.
const SIGNED_STATS: (f32, f32, f64) = (-25.0, 40.0, -50.46285067231656);
const ORT_PCT9999_SIGNED: (f32, f32) = (-9.1015625, 9.84375);
const ORT_PCT999_SIGNED: (f32, f32) = (-6.9140625, 7.2265625);
const ORT_ENT256_SIGNED: (f32, f32) = (-10.0390625, 10.078125);
const ORT_ENT128_SIGNED: (f32, f32) = (-10.078125, 10.1171875);
const SKEWED_STATS: (f32, f32, f64) = (-2.8875875, 6.2755165, 19797.55053448677);
const ORT_PCT9999_SKEWED: (f32, f32) = (-2.763924, 6.269388);
const ORT_PCT999_SKEWED: (f32, f32) = (-2.3962178, 4.639225);
const ORT_ENT256_SKEWED: (f32, f32) = (-2.8875875, 5.521719);
const ORT_ENT128_SKEWED: (f32, f32) = (-2.8875875, 4.718894);
const RELU_STATS: (f32, f32, f64) = (0.0, 60.0, 9943.542704611104);
const ORT_PCT9999_RELU: (f32, f32) = (0.0, 8.613281);
const ORT_PCT999_RELU: (f32, f32) = (0.0, 5.9179688);
const MO_ENT_RELU: f32 = 7.8222656;
const HALF_STATS: (f32, f32, f64) = (0.000055433087, 100.0, 40002.37258426423);
const MO_ENT_HALF: f32 = 16.064453;

/// The references and kestrel bin the same `f32` numbers with the same `f32` edges, so the
/// thresholds should be equal; this allows for the last bit of an edge. One window or bin off
/// would be ~1/1000 of the range, far outside it.
fn close(got: f32, want: f32) -> bool {
    (got - want).abs() <= 1e-6 * want.abs().max(1.0)
}

#[track_caller]
fn assert_range(got: (f32, f32), want: (f32, f32)) {
    assert!(
        close(got.0, want.0) && close(got.1, want.1),
        "got {got:?}, want {want:?}"
    );
}

/// `n` Laplace(0, `scale`) samples from the LCG of tools/calib_fixtures.py.
fn lcg_laplace(seed: u64, n: usize, scale: f64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((s >> 40) as f64 + 0.5) / 16777216.0;
            let d = u - 0.5;
            let x = -(1.0 - 2.0 * d.abs()).ln() * scale;
            (if d >= 0.0 { x } else { -x }) as f32
        })
        .collect()
}

fn signed() -> Vec<f32> {
    let mut x = lcg_laplace(1, 20000, 1.0);
    x.extend([-25.0, 40.0]);
    x
}

fn skewed() -> Vec<f32> {
    lcg_laplace(3, 20000, 0.5)
        .into_iter()
        .map(|v| v + 1.0)
        .collect()
}

fn relu() -> Vec<f32> {
    let mut x: Vec<f32> = lcg_laplace(2, 20000, 1.0)
        .into_iter()
        .map(|v| v.max(0.0))
        .collect();
    x.extend([40.0, 60.0]);
    x
}

fn half() -> Vec<f32> {
    let mut x: Vec<f32> = lcg_laplace(4, 20000, 2.0)
        .into_iter()
        .map(f32::abs)
        .collect();
    x.push(100.0);
    x
}

/// Runs every pass over `x` in batches of 997 values (the last one shorter).
fn calibrate(method: Method, x: &[f32]) -> (f32, f32) {
    let mut obs = Observer::new(method);
    for pass in 0..obs.passes() {
        for batch in x.chunks(997) {
            obs.observe(pass, batch);
        }
    }
    obs.range()
}

#[test]
fn samples_match_the_fixture_generator() {
    for (x, (min, max, sum)) in [
        (signed(), SIGNED_STATS),
        (skewed(), SKEWED_STATS),
        (relu(), RELU_STATS),
        (half(), HALF_STATS),
    ] {
        let got_sum: f64 = x.iter().map(|&v| v as f64).sum();
        assert!(
            (got_sum - sum).abs() <= 1e-9 * sum.abs(),
            "{got_sum} vs {sum}"
        );
        assert_eq!(calibrate(Method::MinMax, &x), (min, max));
    }
}

#[test]
fn percentile_matches_onnxruntime() {
    // Signed tensors: onnxruntime's asymmetric mode, half the clipped fraction off each tail.
    for (x, p9999, p999) in [
        (signed(), ORT_PCT9999_SIGNED, ORT_PCT999_SIGNED),
        (skewed(), ORT_PCT9999_SKEWED, ORT_PCT999_SKEWED),
    ] {
        assert_range(calibrate(Method::Percentile(99.99), &x), p9999);
        assert_range(calibrate(Method::Percentile(99.9), &x), p999);
    }
    // Non-negative: its symmetric mode, the whole fraction off the top.
    let x = relu();
    assert_range(calibrate(Method::Percentile(99.99), &x), ORT_PCT9999_RELU);
    assert_range(calibrate(Method::Percentile(99.9), &x), ORT_PCT999_RELU);
}

#[test]
fn entropy_matches_onnxruntime_on_signed_tensors() {
    for (x, ent256, ent128) in [
        (signed(), ORT_ENT256_SIGNED, ORT_ENT128_SIGNED),
        (skewed(), ORT_ENT256_SKEWED, ORT_ENT128_SKEWED),
    ] {
        assert_range(calibrate(Method::Entropy, &x), ent256);
        // The same search with onnxruntime's default of 128 levels, on kestrel's histogram.
        let mut obs = Observer::new(Method::Entropy);
        obs.observe(0, &x);
        obs.observe(1, &x);
        let h = obs.hist.as_ref().unwrap();
        let (s, e) = entropy_symmetric(&h.counts, 128);
        let (min, max) = (obs.min, obs.max);
        assert_range((h.edge(s).max(min), h.edge(e).min(max)), ent128);
    }
}

#[test]
fn entropy_matches_tensorrt_unsigned_on_non_negative_tensors() {
    assert_range(calibrate(Method::Entropy, &relu()), (0.0, MO_ENT_RELU));
    assert_range(
        calibrate(Method::Entropy, &half()),
        (HALF_STATS.0, MO_ENT_HALF),
    );
}

#[test]
fn non_positive_tensors_are_the_mirror_image() {
    // onnxruntime's symmetric percentile and the TensorRT calibration both work on |x|, so the
    // negated tensor's references are the negated ones above.
    let x: Vec<f32> = relu().iter().map(|v| -v).collect();
    let p = calibrate(Method::Percentile(99.99), &x);
    assert_range(p, (-ORT_PCT9999_RELU.1, 0.0));
    assert_range(calibrate(Method::Entropy, &x), (-MO_ENT_RELU, 0.0));
}

#[test]
fn entropy_and_percentile_clip_a_heavy_outlier_that_minmax_keeps() {
    for x in [relu(), half()] {
        let (_, all) = calibrate(Method::MinMax, &x);
        let (_, ent) = calibrate(Method::Entropy, &x);
        let (_, pct) = calibrate(Method::Percentile(99.99), &x);
        assert!(all >= 60.0, "{all}");
        assert!(ent < all / 3.0 && pct < all / 3.0, "{all} {ent} {pct}");
    }
}

/// The one-sided divergence worked by hand on counts `[8, 2, 6, 0, 4]` with 2 levels. The bin
/// of 0 takes its neighbour's count: bins `[2, 2, 6, 0, 4]`, 14 in all.
/// * `i = 2`: levels `{0}, {1}`; P = [2, 2+6+0+4] / 14, Q = [2, 2] / 4:
///   KL = 2/14·ln((2/14)/(2/4)) + 12/14·ln((12/14)/(2/4)) = 0.283030862...
/// * `i = 3`: levels `⌊2k/3⌋` = `{0, 1}, {2}`; P = [2, 2, 10] / 14, Q = [2, 2, 6] / 10:
///   KL = 4/14·ln(10/14) + 10/14·ln(100/84) = 0.028403208...
/// * `i = 4`: P's last bin holds the 4 beyond but Q's is empty: +∞.
/// * `i = 5`: levels `{0, 1, 2}, {3, 4}`; P = [2, 2, 6, 0, 4] / 14, Q = [10/3, 10/3, 10/3, 0,
///   4] / 14: KL = 4/14·ln(0.6) + 6/14·ln(1.8) = 0.105958392...
///
/// so the search from `i = 2` picks 3 bins.
#[test]
fn one_sided_divergence_by_hand() {
    let mut bins = vec![8, 2, 6, 0, 4];
    let mut groups = vec![(0, 0); 2];
    assert_eq!(entropy_one_sided(&bins, 2, 2), 3);
    bins[0] = bins[1];
    let kl = |i, g: &mut Vec<(u64, u64)>| kl_one_sided(&bins, i, g);
    assert!((kl(2, &mut groups) - 0.2830308622715362).abs() < 1e-12);
    assert!((kl(3, &mut groups) - 0.02840320892592328).abs() < 1e-12);
    assert_eq!(kl(4, &mut groups), f64::INFINITY);
    assert!((kl(5, &mut groups) - 0.10595839245348226).abs() < 1e-12);
}

#[test]
fn non_finite_values_are_ignored() {
    let clean = skewed();
    let mut dirty = clean.clone();
    for (i, bad) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY]
        .into_iter()
        .enumerate()
    {
        dirty.insert(100 + 3000 * i, bad);
    }
    for m in [Method::MinMax, Method::Percentile(99.9), Method::Entropy] {
        assert_eq!(calibrate(m, &dirty), calibrate(m, &clean), "{m}");
    }
}

#[test]
fn nothing_to_clip_gives_zero_or_the_constant() {
    for m in [Method::MinMax, Method::Percentile(99.99), Method::Entropy] {
        assert_eq!(calibrate(m, &[0.0; 1000]), (0.0, 0.0), "{m}");
        assert_eq!(calibrate(m, &[]), (0.0, 0.0), "{m}");
        assert_eq!(calibrate(m, &[f32::NAN, f32::INFINITY]), (0.0, 0.0), "{m}");
        assert_eq!(calibrate(m, &[-0.0, 0.0]), (0.0, 0.0), "{m}");
    }
    // A constant: every value in the last bin, which only the widest window keeps whole.
    assert_eq!(calibrate(Method::Entropy, &[3.0; 100]), (3.0, 3.0));
    assert_eq!(calibrate(Method::Entropy, &[-3.0; 100]), (-3.0, -3.0));
}

#[test]
fn a_histogram_method_without_pass_one_falls_back_to_min_max() {
    let mut obs = Observer::new(Method::Entropy);
    obs.observe(0, &[-1.0, 2.0]);
    assert_eq!(obs.range(), (-1.0, 2.0));
    obs.observe(1, &[f32::NAN]);
    assert_eq!(obs.range(), (-1.0, 2.0));
}

#[test]
#[should_panic(expected = "minmax calibration has 1 pass(es), got pass 1")]
fn minmax_has_one_pass() {
    Observer::new(Method::MinMax).observe(1, &[1.0]);
}

#[test]
#[should_panic(expected = "passes must come in order")]
fn passes_come_in_order() {
    let mut obs = Observer::new(Method::Percentile(99.0));
    obs.observe(1, &[1.0]);
    obs.observe(0, &[1.0]);
}

#[test]
fn histogram_bins_follow_numpy_edges() {
    // Range [0, 1], 2048 bins: 0.5 is edge 1024 exactly, the largest float below it belongs to
    // bin 1023, the maximum to the last bin, values past the ends to the end bins.
    let mut h = Histogram::for_range(0.0, 1.0).unwrap();
    for v in [
        0.5,
        f32::from_bits(0.5f32.to_bits() - 1),
        1.0,
        0.0,
        2.0,
        -1.0,
    ] {
        h.add(v);
    }
    let at = |k: usize| h.counts[k];
    assert_eq!((at(1024), at(1023), at(2047), at(0)), (1, 1, 2, 2));
    assert_eq!(h.edge(1024), 0.5);
    assert_eq!(h.edge(2048), 1.0);
    let neg = Histogram::for_range(-4.0, -1.0).unwrap();
    assert_eq!((neg.side, neg.lo, neg.hi), (Side::Negative, 0.0, 4.0));
    let both = Histogram::for_range(-4.0, 1.0).unwrap();
    assert_eq!((both.side, both.lo, both.hi), (Side::Both, -4.0, 4.0));
}

#[test]
fn cdf_bin_by_hand() {
    // Fractions 0.125, 0.375, 0.625, 1 (exact in binary).
    let c = [1, 2, 2, 3];
    assert_eq!(cdf_bin(&c, 0.1), 0);
    assert_eq!(cdf_bin(&c, 0.375), 1);
    assert_eq!(cdf_bin(&c, 0.5), 2);
    assert_eq!(cdf_bin(&c, 1.0), 3);
    assert_eq!(cdf_bin(&c, 1.5), 4);
}

#[test]
fn method_parse_and_display() {
    assert_eq!(Method::parse("minmax"), Ok(Method::MinMax));
    assert_eq!(Method::parse("entropy"), Ok(Method::Entropy));
    assert_eq!(Method::parse("percentile"), Ok(Method::Percentile(99.99)));
    assert_eq!("percentile:99.9".parse(), Ok(Method::Percentile(99.9)));
    for m in [Method::MinMax, Method::Percentile(99.999), Method::Entropy] {
        assert_eq!(Method::parse(&m.to_string()), Ok(m));
    }
    assert_eq!(Method::Percentile(99.99).to_string(), "percentile:99.99");
    assert_eq!(Method::Percentile(99.99).name(), "percentile");
    let err = Method::parse("kl").unwrap_err();
    for word in ["`kl`", "minmax", "percentile:P", "entropy"] {
        assert!(err.contains(word), "{err}");
    }
    for bad in [
        "percentile:0",
        "percentile:100.5",
        "percentile:x",
        "percentile:NaN",
    ] {
        assert!(
            Method::parse(bad).unwrap_err().contains("(0, 100]"),
            "{bad}"
        );
    }
}
