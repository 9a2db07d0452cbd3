//! Activation ranges for post-training static quantisation: one [`Observer`] per activation
//! value watches that value over the calibration images and gives the clipping range `(lo, hi)`
//! that [`ActQuant::from_range`](super::ActQuant::from_range) turns into a `u8` scale and zero
//! point.
//!
//! Non-finite values (NaN, ±inf) are ignored everywhere; a value that was only ever 0 (or never
//! finite) gets `(0, 0)`. Memory is fixed: two floats, plus a [`HISTOGRAM_BINS`]-bin histogram for
//! the histogram methods.
//!
//! # Methods
//!
//! * [`Method::MinMax`]: the running minimum and maximum, one pass.
//! * [`Method::Percentile`] and [`Method::Entropy`] take two passes over the same images: pass 0
//!   finds the minimum and maximum, pass 1 fills a [`HISTOGRAM_BINS`]-bin histogram over a range
//!   chosen from them (numpy's binning: edge `k` is `lo + k·step` in `f32`, `step = (hi - lo)/2048`).
//!   A `u8` code range sits anywhere, so the layout follows the sign of the data:
//!   - **non-negative** values (ReLU outputs): the histogram spans `[0, max]` and only the top is
//!     clipped, `lo` stays the minimum;
//!   - **non-positive** values: the mirror image (histogram of `-x`, only the bottom is clipped);
//!   - **signed** values: the histogram spans `[-T, T]`, `T = max(|min|, |max|)`, and both ends
//!     may be clipped; the result is clamped to `[min, max]`.
//!
//! **Percentile `p`** (default 99.99). Non-negative: `hi` is the lower edge of the first bin at
//! which the cumulative fraction reaches `p/100`, clamped to `max` (onnxruntime's symmetric
//! percentile calibration on `|x| = x`). Signed: each tail loses `(100 - p)/2` percent, `lo` and
//! `hi` being the lower edges of the bins where the cumulative fraction reaches `(100 - p)/200`
//! and `1 - (100 - p)/200` (onnxruntime's asymmetric percentile calibration). Clipping only the
//! top of a one-signed tensor spends the whole clipping budget where the values are, instead of
//! half of it on an empty negative side.
//!
//! **Entropy.** The threshold whose quantised histogram is closest in KL divergence
//! `KL(P ‖ Q)` to the full one, `P` being the histogram clipped to the candidate range (mass
//! beyond it added to the end bins) and `Q` its merge into as many levels as the `u8` codes that
//! cover that range, spread back over the bins. All 256 codes of a `u8` activation cover the
//! chosen range whichever its sign, so kestrel models [`QUANTIZED_BINS`] = 256 levels in both
//! layouts (onnxruntime's default of 128 levels over a symmetric window models 7 bits):
//! - **non-negative** (and mirrored non-positive): TensorRT's calibration for unsigned 8 bits.
//!   Candidates `t` are the bin edges `i·w`, `i = 128..=2048`; bin `k < i` goes to level
//!   `⌊256·k/i⌋`; each level's mass is shared equally by its non-empty bins and empty bins get
//!   none; the bin holding 0 is first replaced by its neighbour, because ReLU's spike of exact
//!   zeros is exact in `u8` (it is the zero point) and would otherwise dominate the divergence.
//!   A window with no mass or whose last bin is empty while mass lies beyond scores +∞; ties go to
//!   the widest window.
//! - **signed**: onnxruntime's window search: windows of `2i + 1` bins from the zero bin,
//!   `i = 128..=1024`, clip to `[lower edge, upper edge]`; the window's bins are merged in runs of
//!   `⌊len/256⌋` (the leftover bins' mass goes to the last level but the leftover bins
//!   themselves get none), each run's mass is divided (truncated to an integer) among the bins of
//!   the run whose `P` is non-zero, and both `P` and `Q` are smoothed (empty bins get 10⁻⁴, taken
//!   evenly off the others) before the divergence; ties go to the narrowest window. Those details
//!   are kept so that the thresholds are onnxruntime's (tested); the leftover rule is why this
//!   definition is not used for one-sided tensors, where it would favour windows of whole
//!   multiples of 256 bins.
//!
//! Divergences within 10⁻⁶ (relative) of the smallest count as ties. Differences that small are
//! far below the histogram's sampling noise and below what onnxruntime's `f32` arithmetic
//! resolves: on the signed test tensor two windows differ by 10⁻⁹ in `f64` and onnxruntime,
//! taking the first minimum of its `f32` divergences, picks the narrower.

use std::fmt;
use std::str::FromStr;

/// Bins of the calibration histogram of the percentile and entropy methods.
pub const HISTOGRAM_BINS: usize = 2048;
/// Quantised levels the entropy method models: the 256 codes of a `u8` activation.
pub const QUANTIZED_BINS: usize = 256;
/// Narrowest window, in bins, of the one-sided entropy search.
const ONE_SIDED_START: usize = 128;
/// Mass given to each empty bin when smoothing a signed window.
const SMOOTHING: f64 = 1e-4;
/// Divergences within this relative distance of the smallest count as equal to it.
const TIE: f64 = 1e-6;

/// How an activation's clipping range is estimated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The observed minimum and maximum.
    MinMax,
    /// Clip `100 - p` percent of the values, `p` in `(0, 100]` (see the module docs for which
    /// tail).
    Percentile(f64),
    /// The range minimising the KL divergence between the histogram and its 8-bit quantisation.
    Entropy,
}

impl Method {
    /// The percentile of a bare `percentile`.
    pub const DEFAULT_PERCENTILE: f64 = 99.99;

    /// Parses `minmax`, `percentile` (99.99), `percentile:P` or `entropy`; the error says what
    /// was expected.
    pub fn parse(s: &str) -> Result<Method, String> {
        match s {
            "minmax" => Ok(Method::MinMax),
            "entropy" => Ok(Method::Entropy),
            "percentile" => Ok(Method::Percentile(Self::DEFAULT_PERCENTILE)),
            _ => match s.strip_prefix("percentile:") {
                Some(p) => match p.parse::<f64>() {
                    Ok(v) if valid_percentile(v) => Ok(Method::Percentile(v)),
                    _ => Err(format!(
                        "calibration percentile `{p}`: expected a number in (0, 100]"
                    )),
                },
                None => Err(format!(
                    "unknown calibration method `{s}`: expected minmax, percentile, \
                     percentile:P (0 < P <= 100, default {}) or entropy",
                    Self::DEFAULT_PERCENTILE
                )),
            },
        }
    }

    /// The method's name without its parameter: `minmax`, `percentile` or `entropy`.
    pub fn name(&self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile(_) => "percentile",
            Method::Entropy => "entropy",
        }
    }
}

fn valid_percentile(p: f64) -> bool {
    p > 0.0 && p <= 100.0
}

impl FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Method, String> {
        Method::parse(s)
    }
}

/// `minmax`, `percentile:P` or `entropy` (what [`Method::parse`] reads back).
impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Percentile(p) => write!(f, "percentile:{p}"),
            m => f.write_str(m.name()),
        }
    }
}

/// Where the histogram lies relative to zero.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    /// `x` over `[0, max]`.
    Positive,
    /// `-x` over `[0, -min]`.
    Negative,
    /// `x` over `[-T, T]`.
    Both,
}

/// A fixed-size histogram with numpy's `f32` bin edges.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    lo: f32,
    hi: f32,
    step: f32,
    side: Side,
}

impl Histogram {
    /// The layout for values in `[min, max]`; `None` when there is nothing to clip (no finite
    /// value, or only zeros).
    fn for_range(min: f32, max: f32) -> Option<Histogram> {
        let (lo, hi, side) = if min > max {
            return None;
        } else if min >= 0.0 {
            (0.0, max, Side::Positive)
        } else if max <= 0.0 {
            (0.0, -min, Side::Negative)
        } else {
            let t = max.max(-min);
            (-t, t, Side::Both)
        };
        (hi > lo).then(|| Histogram {
            counts: vec![0; HISTOGRAM_BINS],
            lo,
            hi,
            step: (hi - lo) / HISTOGRAM_BINS as f32,
            side,
        })
    }

    /// Edge `k` of `0..=n` (edge `k` is the lower edge of bin `k`).
    fn edge(&self, k: usize) -> f32 {
        if k == self.counts.len() {
            self.hi
        } else {
            k as f32 * self.step + self.lo
        }
    }

    /// Counts a finite value (values outside the range go to the end bins).
    fn add(&mut self, x: f32) {
        let v = if self.side == Side::Negative { -x } else { x };
        let n = self.counts.len();
        let f = (v - self.lo) / (self.hi - self.lo) * n as f32;
        // The float estimate, corrected against the edges themselves (as numpy does).
        let mut i = (f as usize).min(n - 1);
        if i > 0 && v < self.edge(i) {
            i -= 1;
        }
        if i + 1 < n && v >= self.edge(i + 1) {
            i += 1;
        }
        self.counts[i] += 1;
    }
}

/// Watches one activation value during calibration and gives its clipping range.
///
/// Feed every batch of pass 0, then (for the histogram methods) every batch of pass 1 with the
/// same images in any order, then read [`Observer::range`]:
///
/// ```
/// use kestrel_runtime::quant::calibrate::{Method, Observer};
/// let batches = [vec![0.0f32, 1.0, 2.0], vec![3.0, f32::NAN, 0.5]];
/// let mut obs = Observer::new(Method::Entropy);
/// for pass in 0..obs.passes() {
///     for b in &batches {
///         obs.observe(pass, b);
///     }
/// }
/// let (lo, hi) = obs.range();
/// assert_eq!(lo, 0.0);
/// assert!(hi > 0.0 && hi <= 3.0);
/// ```
#[derive(Debug, Clone)]
pub struct Observer {
    method: Method,
    pass: usize,
    min: f32,
    max: f32,
    hist: Option<Histogram>,
}

impl Observer {
    /// An observer that has seen nothing.
    ///
    /// # Panics
    /// If a percentile is outside `(0, 100]`.
    pub fn new(method: Method) -> Self {
        if let Method::Percentile(p) = method {
            assert!(
                valid_percentile(p),
                "calibration percentile {p} is outside (0, 100]"
            );
        }
        Observer {
            method,
            pass: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            hist: None,
        }
    }

    /// The method this observer applies.
    pub fn method(&self) -> Method {
        self.method
    }

    /// How many passes over the calibration images the method needs: 1 for min/max, 2 for the
    /// histogram methods (pass 0 finds the minimum and maximum, pass 1 fills the histogram).
    pub fn passes(&self) -> usize {
        match self.method {
            Method::MinMax => 1,
            Method::Percentile(_) | Method::Entropy => 2,
        }
    }

    /// Takes in one batch of the activation's values during `pass`.
    ///
    /// # Panics
    /// If `pass >= self.passes()` or `pass` is lower than that of an earlier call.
    pub fn observe(&mut self, pass: usize, x: &[f32]) {
        assert!(
            pass < self.passes(),
            "{} calibration has {} pass(es), got pass {pass}",
            self.method.name(),
            self.passes()
        );
        assert!(
            pass >= self.pass,
            "calibration passes must come in order: pass {pass} after pass {}",
            self.pass
        );
        self.pass = pass;
        if pass == 0 {
            for &v in x.iter().filter(|v| v.is_finite()) {
                self.min = self.min.min(v);
                self.max = self.max.max(v);
            }
            return;
        }
        if self.hist.is_none() {
            self.hist = Histogram::for_range(self.min, self.max);
        }
        if let Some(h) = &mut self.hist {
            for &v in x.iter().filter(|v| v.is_finite()) {
                h.add(v);
            }
        }
    }

    /// The clipping range `(lo, hi)`, `lo <= hi`, within the observed minimum and maximum;
    /// `(0, 0)` if no finite value was seen. A histogram method whose pass 1 saw no finite value
    /// gives the min/max range.
    pub fn range(&self) -> (f32, f32) {
        let (min, max) = (self.min, self.max);
        if min > max {
            return (0.0, 0.0);
        }
        let Some(h) = self
            .hist
            .as_ref()
            .filter(|h| h.counts.iter().any(|&c| c > 0))
        else {
            return (min, max);
        };
        let c = &h.counts;
        let (lo, hi) = match (self.method, h.side) {
            (Method::MinMax, _) => return (min, max),
            (Method::Percentile(p), Side::Both) => {
                let cut = (100.0 - p) / 200.0;
                (h.edge(cdf_bin(c, cut)), h.edge(cdf_bin(c, 1.0 - cut)))
            }
            (Method::Percentile(p), _) => (0.0, h.edge(cdf_bin(c, p / 100.0))),
            (Method::Entropy, Side::Both) => {
                let (s, e) = entropy_symmetric(c, QUANTIZED_BINS);
                (h.edge(s), h.edge(e))
            }
            (Method::Entropy, _) => (
                0.0,
                h.edge(entropy_one_sided(c, QUANTIZED_BINS, ONE_SIDED_START)),
            ),
        };
        match h.side {
            Side::Both => (lo.max(min), hi.min(max)),
            Side::Positive => (min, hi.min(max)),
            Side::Negative => ((-hi).max(min), max),
        }
    }
}

/// The first bin at which the running fraction of `counts` reaches `fraction`, or `counts.len()`
/// if it never does.
fn cdf_bin(counts: &[u64], fraction: f64) -> usize {
    let total = counts.iter().sum::<u64>() as f64;
    let mut cdf = 0.0;
    for (i, &c) in counts.iter().enumerate() {
        cdf += c as f64 / total;
        if cdf >= fraction {
            return i;
        }
    }
    counts.len()
}

/// The one-sided entropy search over a histogram of `[0, max]`: the number of bins `i` (from
/// `start`) whose window `[0, i·w]` minimises [`kl_one_sided`] (ties: the largest `i`).
fn entropy_one_sided(counts: &[u64], levels: usize, start: usize) -> usize {
    let mut bins = counts.to_vec();
    if bins.len() > 1 {
        bins[0] = bins[1];
    }
    let mut groups = vec![(0u64, 0u64); levels];
    let first = start.clamp(1, bins.len());
    let kls: Vec<f64> = (first..=bins.len())
        .map(|i| kl_one_sided(&bins, i, &mut groups))
        .collect();
    first + argmin(&kls, true)
}

/// The index of the smallest of `kls`, values within [`TIE`] of it counting as equal: the last
/// of them if `last`, else the first.
fn argmin(kls: &[f64], last: bool) -> usize {
    let min = kls.iter().copied().fold(f64::INFINITY, f64::min);
    let tied = |&kl: &f64| kl <= min + TIE * min;
    let found = if last {
        kls.iter().rposition(tied)
    } else {
        kls.iter().position(tied)
    };
    found.unwrap_or(0)
}

/// `KL(P ‖ Q)` of the window of the first `i` bins merged into `groups.len()` levels: bin `k`
/// goes to level `⌊levels·k/i⌋`, `Q` shares each level's mass equally among its non-empty bins,
/// `P` is the window with the mass beyond it added to its last bin.
fn kl_one_sided(bins: &[u64], i: usize, groups: &mut [(u64, u64)]) -> f64 {
    let levels = groups.len();
    groups.fill((0, 0));
    for (k, &b) in bins[..i].iter().enumerate().filter(|(_, &b)| b > 0) {
        let g = &mut groups[k * levels / i];
        g.0 += b;
        g.1 += 1;
    }
    let kept: u64 = groups.iter().map(|g| g.0).sum();
    let beyond: u64 = bins[i..].iter().sum();
    if kept == 0 || (beyond > 0 && bins[i - 1] == 0) {
        return f64::INFINITY;
    }
    let total = (kept + beyond) as f64;
    let mut kl = 0.0;
    for (k, &b) in bins[..i].iter().enumerate().filter(|(_, &b)| b > 0) {
        let p = (b + if k + 1 == i { beyond } else { 0 }) as f64 / total;
        let (mass, nonempty) = groups[k * levels / i];
        let q = mass as f64 / nonempty as f64 / kept as f64;
        kl += p * (p / q).ln();
    }
    kl
}

/// The signed entropy search over a histogram of `[-T, T]`: the window `[s, e)` of bins, centred
/// on the zero bin, that minimises [`kl_window`] (ties: the first).
fn entropy_symmetric(counts: &[u64], levels: usize) -> (usize, usize) {
    let n = counts.len();
    let zero = n / 2;
    let window = |i: usize| (zero - i, (zero + i + 1).min(n));
    let (mut p, mut q) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let kls: Vec<f64> = (levels / 2..=zero)
        .map(|i| {
            let (s, e) = window(i);
            kl_window(counts, s, e, levels, &mut p, &mut q)
        })
        .collect();
    window(levels / 2 + argmin(&kls, false))
}

/// `KL(P ‖ Q)` of the window `[s, e)` of `counts` (see the module docs: `P` with the mass outside
/// added to its end bins, `Q` the window merged into `levels` runs and spread back, both
/// smoothed). `p` and `q` are scratch.
fn kl_window(
    counts: &[u64],
    s: usize,
    e: usize,
    levels: usize,
    p: &mut Vec<f64>,
    q: &mut Vec<f64>,
) -> f64 {
    let len = e - s;
    let run = len / levels;
    p.clear();
    p.extend(counts[s..e].iter().map(|&c| c as f64));
    p[0] += counts[..s].iter().sum::<u64>() as f64;
    p[len - 1] += counts[e..].iter().sum::<u64>() as f64;
    q.clear();
    q.resize(len, 0.0);
    for j in 0..levels {
        let (a, b) = (j * run, (j + 1) * run);
        let mut mass: u64 = counts[s + a..s + b].iter().sum();
        if j + 1 == levels {
            mass += counts[s + levels * run..e].iter().sum::<u64>();
        }
        let nonzero = p[a..b].iter().filter(|&&v| v != 0.0).count();
        if nonzero > 0 {
            q[a..b].fill((mass as f64 / nonzero as f64).trunc());
        }
    }
    if !smooth(p) || !smooth(q) {
        return f64::INFINITY;
    }
    let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
    p.iter()
        .zip(q.iter())
        .map(|(&a, &b)| {
            let (a, b) = (a / sp, b / sq);
            a * (a / b).ln()
        })
        .sum()
}

/// Gives each empty bin [`SMOOTHING`] and takes the total evenly off the others; `false` if all
/// bins are empty.
fn smooth(v: &mut [f64]) -> bool {
    let zeros = v.iter().filter(|&&x| x == 0.0).count();
    if zeros == v.len() {
        return false;
    }
    let take = SMOOTHING * zeros as f64 / (v.len() - zeros) as f64;
    for x in v.iter_mut() {
        *x = if *x == 0.0 { SMOOTHING } else { *x - take };
    }
    true
}

#[cfg(test)]
mod tests;
