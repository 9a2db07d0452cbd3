//! `shapes`: a deterministic synthetic dataset of one coloured shape per image on a noisy, textured
//! background, with a per-pixel mask (0 = background, c + 1 = class c).
//!
//! Every sample is a pure function of (options, index): sample `i` draws from its own random stream,
//! so the same options give the same bytes whatever order or thread generates them.

use crate::error::DataError;
use crate::rng::Rng;
use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

/// Names of the shape classes, in class-index order. `classes = K` uses the first K.
pub const SHAPE_NAMES: [&str; 8] = [
    "circle", "square", "triangle", "star", "cross", "ring", "crescent", "hexagon",
];

/// Options of the `shapes` dataset (`shapes:n=3000,size=64,classes=4,imbalance=1,seed=0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShapesConfig {
    /// Number of images.
    pub n: usize,
    /// Image side in pixels.
    pub size: usize,
    /// Number of shape classes (1..=8).
    pub classes: usize,
    /// Ratio of the most to the least frequent class; class frequencies fall geometrically from
    /// class 0 to class K − 1. 1 means balanced.
    pub imbalance: f64,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        Self {
            n: 3000,
            size: 64,
            classes: 4,
            imbalance: 1.0,
            seed: 0,
        }
    }
}

/// The most images a `shapes` spec may ask for: images are drawn on demand, but every image has
/// a label and an index in memory (ten million take about 100 MB).
pub const MAX_SHAPES: usize = 10_000_000;

impl ShapesConfig {
    /// Checks every option's range.
    pub fn validate(&self) -> Result<(), DataError> {
        if !(1..=MAX_SHAPES).contains(&self.n) {
            return Err(DataError::value(
                "n",
                format!("expected 1..={MAX_SHAPES} images, got {}", self.n),
            ));
        }
        if !(16..=1024).contains(&self.size) {
            return Err(DataError::value(
                "size",
                format!("expected 16..=1024 pixels, got {}", self.size),
            ));
        }
        if !(1..=SHAPE_NAMES.len()).contains(&self.classes) {
            return Err(DataError::value(
                "classes",
                format!("expected 1..={}, got {}", SHAPE_NAMES.len(), self.classes),
            ));
        }
        if !(self.imbalance.is_finite() && self.imbalance >= 1.0) {
            return Err(DataError::value(
                "imbalance",
                format!(
                    "expected a ratio >= 1 (1 = balanced), got {}",
                    self.imbalance
                ),
            ));
        }
        Ok(())
    }

    /// Images per class: frequencies geometric from class 0 (most) to class K − 1 (least), with
    /// ratio `imbalance` between them, rounded by largest remainder so they sum to `n`.
    pub fn class_counts(&self) -> Vec<usize> {
        let k = self.classes;
        let weights: Vec<f64> = (0..k)
            .map(|c| {
                if k == 1 {
                    1.0
                } else {
                    self.imbalance.powf(-(c as f64) / (k - 1) as f64)
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let exact: Vec<f64> = weights.iter().map(|w| w / total * self.n as f64).collect();
        let mut counts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
        let mut order: Vec<usize> = (0..k).collect();
        // Largest fractional part first; ties to the lower class index.
        order.sort_by(|&a, &b| {
            let fa = exact[a] - exact[a].floor();
            let fb = exact[b] - exact[b].floor();
            fb.total_cmp(&fa).then(a.cmp(&b))
        });
        let missing = self.n - counts.iter().sum::<usize>();
        for &c in order.iter().take(missing) {
            counts[c] += 1;
        }
        counts
    }
}

/// One generated sample.
#[derive(Clone, Debug)]
pub struct ShapeSample {
    /// The RGB image.
    pub image: RgbImage,
    /// Per-pixel class: 0 = background, c + 1 = shape class c.
    pub mask: GrayImage,
    /// The shape's class.
    pub label: usize,
}

/// The `shapes` dataset: labels fixed at construction, images rendered on demand.
#[derive(Clone, Debug)]
pub struct Shapes {
    config: ShapesConfig,
    labels: Vec<u8>,
}

impl Shapes {
    /// Builds the dataset after checking the options.
    pub fn new(config: ShapesConfig) -> Result<Self, DataError> {
        config.validate()?;
        let mut labels = Vec::with_capacity(config.n);
        for (c, &count) in config.class_counts().iter().enumerate() {
            labels.extend(std::iter::repeat_n(c as u8, count));
        }
        Rng::new(config.seed).shuffle(&mut labels);
        Ok(Self { config, labels })
    }

    /// The options.
    pub fn config(&self) -> &ShapesConfig {
        &self.config
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset is empty (never, for valid options).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The class of every sample.
    pub fn labels(&self) -> Vec<usize> {
        self.labels.iter().map(|&l| l as usize).collect()
    }

    /// The class names, in index order.
    pub fn class_names(&self) -> Vec<String> {
        SHAPE_NAMES[..self.config.classes]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Renders sample `index` (< len).
    pub fn sample(&self, index: usize) -> ShapeSample {
        let label = self.labels[index] as usize;
        let mut rng = Rng::stream(self.config.seed, index as u64);
        render(self.config.size, label, &mut rng)
    }
}

/// Geometry of one drawn shape: centre, radius, rotation.
struct Placement {
    cx: f64,
    cy: f64,
    radius: f64,
    angle: f64,
}

/// Renders one image of class `label` from `rng`.
fn render(size: usize, label: usize, rng: &mut Rng) -> ShapeSample {
    let s = size as f64;
    let radius = rng.uniform(0.2, 0.42) * s;
    let place = Placement {
        radius,
        cx: rng.uniform(radius, s - radius),
        cy: rng.uniform(radius, s - radius),
        angle: rng.uniform(0.0, std::f64::consts::TAU),
    };

    // Background: a muted base colour, a smooth gradient, two random gratings, pixel noise.
    let base: [f64; 3] = [
        rng.uniform(20.0, 120.0),
        rng.uniform(20.0, 120.0),
        rng.uniform(20.0, 120.0),
    ];
    let grad = [rng.uniform(-20.0, 20.0), rng.uniform(-20.0, 20.0)];
    // Each grating: (cos θ, sin θ, frequency, phase, amplitude), the direction precomputed once.
    let gratings: Vec<(f64, f64, f64, f64, f64)> = (0..2)
        .map(|_| {
            let theta = rng.uniform(0.0, std::f64::consts::PI);
            let freq = rng.uniform(1.0, 4.0) / s;
            (
                theta.cos(),
                theta.sin(),
                freq,
                rng.uniform(0.0, std::f64::consts::TAU),
                rng.uniform(4.0, 10.0),
            )
        })
        .collect();
    // Foreground: a random colour whose luminance stands at least 70 above the background's, so
    // the shape always reads as a bright figure on a darker ground.
    let luma = |c: &[f64; 3]| 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
    let mut fg = [255.0f64; 3];
    for _ in 0..64 {
        let candidate = [
            rng.uniform(0.0, 255.0),
            rng.uniform(0.0, 255.0),
            rng.uniform(0.0, 255.0),
        ];
        if luma(&candidate) >= luma(&base) + 70.0 {
            fg = candidate;
            break;
        }
    }
    let poly = shape_polygon(label);

    let mut image = RgbImage::new(size as u32, size as u32);
    let mut mask = GrayImage::new(size as u32, size as u32);
    let (sin, cos) = place.angle.sin_cos();
    for y in 0..size {
        for x in 0..size {
            let px = x as f64 + 0.5;
            let py = y as f64 + 0.5;
            // Into the shape's unit frame.
            let dx = (px - place.cx) / place.radius;
            let dy = (py - place.cy) / place.radius;
            let u = cos * dx + sin * dy;
            let v = -sin * dx + cos * dy;
            let inside = contains(label, &poly, u, v);
            let mut rgb = if inside {
                fg
            } else {
                let mut c = base;
                let t = grad[0] * (px / s - 0.5) + grad[1] * (py / s - 0.5);
                let mut tex = 0.0;
                for &(cos_t, sin_t, freq, phase, amp) in &gratings {
                    let proj = px * cos_t + py * sin_t;
                    tex += amp * (std::f64::consts::TAU * freq * proj + phase).sin();
                }
                for ch in c.iter_mut() {
                    *ch += t + tex;
                }
                c
            };
            for ch in rgb.iter_mut() {
                *ch += 8.0 * rng.normal();
            }
            image.put_pixel(
                x as u32,
                y as u32,
                image::Rgb(rgb.map(|c| c.round().clamp(0.0, 255.0) as u8)),
            );
            if inside {
                mask.put_pixel(x as u32, y as u32, image::Luma([label as u8 + 1]));
            }
        }
    }
    ShapeSample { image, mask, label }
}

/// Polygon vertices in the unit frame, for the polygonal classes.
fn shape_polygon(label: usize) -> Vec<(f64, f64)> {
    let regular = |n: usize, r: f64| -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let a = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
                (r * a.cos(), r * a.sin())
            })
            .collect()
    };
    match SHAPE_NAMES[label] {
        "triangle" => regular(3, 1.0),
        "hexagon" => regular(6, 0.95),
        "square" => regular(4, 0.95),
        "star" => (0..10)
            .map(|i| {
                let r = if i % 2 == 0 { 1.0 } else { 0.42 };
                let a = std::f64::consts::TAU * i as f64 / 10.0 - std::f64::consts::FRAC_PI_2;
                (r * a.cos(), r * a.sin())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether unit-frame point (u, v) is inside shape `label`.
fn contains(label: usize, poly: &[(f64, f64)], u: f64, v: f64) -> bool {
    let r2 = u * u + v * v;
    match SHAPE_NAMES[label] {
        "circle" => r2 <= 0.9 * 0.9,
        "ring" => (0.5 * 0.5..=1.0).contains(&r2),
        "cross" => {
            let w = 0.32;
            (u.abs() <= w && v.abs() <= 1.0) || (v.abs() <= w && u.abs() <= 1.0)
        }
        "crescent" => r2 <= 1.0 && (u - 0.45).powi(2) + v * v > 0.8 * 0.8,
        _ => point_in_polygon(poly, u, v),
    }
}

/// Even–odd rule point-in-polygon test.
fn point_in_polygon(poly: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let n = poly.len();
    let mut j = n - 1;
    for i in 0..n {
        let (xi, yi) = poly[i];
        let (xj, yj) = poly[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> Shapes {
        Shapes::new(ShapesConfig {
            n: 40,
            size: 48,
            classes: 8,
            imbalance: 1.0,
            seed,
        })
        .unwrap()
    }

    #[test]
    fn same_options_same_bytes() {
        let a = small(5);
        let b = small(5);
        for i in [0, 7, 39] {
            let (sa, sb) = (a.sample(i), b.sample(i));
            assert_eq!(sa.image.as_raw(), sb.image.as_raw());
            assert_eq!(sa.mask.as_raw(), sb.mask.as_raw());
            assert_eq!(sa.label, sb.label);
        }
        // A different seed gives different images.
        assert_ne!(
            a.sample(0).image.as_raw(),
            small(6).sample(0).image.as_raw()
        );
    }

    #[test]
    fn mask_agrees_with_label() {
        let ds = small(1);
        for i in 0..ds.len() {
            let s = ds.sample(i);
            let fg = s.mask.as_raw().iter().filter(|&&m| m != 0).count();
            assert!(
                s.mask
                    .as_raw()
                    .iter()
                    .all(|&m| m == 0 || m as usize == s.label + 1),
                "sample {i}: mask holds a class other than {}",
                s.label + 1
            );
            // The shape covers a sensible part of the image: radius 0.2..0.42 of the side.
            let frac = fg as f64 / (48.0 * 48.0);
            assert!(
                frac > 0.02 && frac < 0.6,
                "sample {i}: foreground fraction {frac}"
            );
        }
    }

    #[test]
    fn counts_follow_the_imbalance_ratio() {
        let cfg = ShapesConfig {
            n: 1000,
            classes: 4,
            imbalance: 8.0,
            ..ShapesConfig::default()
        };
        let counts = cfg.class_counts();
        assert_eq!(counts.iter().sum::<usize>(), 1000);
        let ratio = counts[0] as f64 / counts[3] as f64;
        assert!((ratio - 8.0).abs() < 0.2, "{counts:?}");
        // Geometric: each step divides by 8^(1/3) = 2.
        assert!(
            (counts[0] as f64 / counts[1] as f64 - 2.0).abs() < 0.05,
            "{counts:?}"
        );
        let ds = Shapes::new(cfg).unwrap();
        let mut seen = [0usize; 4];
        for l in ds.labels() {
            seen[l] += 1;
        }
        assert_eq!(seen.to_vec(), counts);
    }

    #[test]
    fn bad_options_name_the_field() {
        let err = Shapes::new(ShapesConfig {
            classes: 9,
            ..ShapesConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("classes"), "{err}");
        let err = Shapes::new(ShapesConfig {
            imbalance: 0.5,
            ..ShapesConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("imbalance"), "{err}");
        // A count that would need a terabyte of labels is refused before anything is allocated.
        for n in [0, MAX_SHAPES + 1, 1_000_000_000_000] {
            let err = Shapes::new(ShapesConfig {
                n,
                ..ShapesConfig::default()
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains("`n`") && err.contains("10000000"), "{err}");
        }
    }
}
