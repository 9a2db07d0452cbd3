//! Maximum-sum subarray (Kadane, 1984) and maximum-sum sub-rectangle (Kadane over every pair of
//! rows, O(H²·W)), and their use to turn per-class probability maps into boxes.
//!
//! Conventions: ranges are half-open. A [`Subarray`] covers `start..end`; a [`Rectangle`] covers
//! rows `y0..y1` and columns `x0..x1` (so (x0, y0) is the top-left pixel, inclusive, and
//! (x1, y1) the bottom-right pixel edge, exclusive; width x1 − x0). Both are never empty: for
//! an all-negative input the best subarray is the single largest element. Sums accumulate in
//! f64. Among equal sums, the one found first wins (smallest end, then the shortest).

use crate::error::DataError;
use serde::{Deserialize, Serialize};

/// A maximum-sum run `start..end` of a 1-D array.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Subarray {
    /// First index (inclusive).
    pub start: usize,
    /// One past the last index (exclusive).
    pub end: usize,
    /// Sum of the elements in `start..end`.
    pub sum: f64,
}

/// A maximum-sum sub-rectangle: rows `y0..y1`, columns `x0..x1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rectangle {
    /// First column (inclusive).
    pub x0: usize,
    /// First row (inclusive).
    pub y0: usize,
    /// One past the last column (exclusive).
    pub x1: usize,
    /// One past the last row (exclusive).
    pub y1: usize,
    /// Sum of the elements inside.
    pub sum: f64,
}

/// One box from [`mask_to_boxes`]: the rectangle of pixels where class `class` is most
/// concentrated above the threshold. Serialises as `{class, x0, y0, x1, y1, score}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskBox {
    /// Class index (the plane of the probability stack).
    pub class: usize,
    /// First column (inclusive).
    pub x0: usize,
    /// First row (inclusive).
    pub y0: usize,
    /// One past the last column (exclusive).
    pub x1: usize,
    /// One past the last row (exclusive).
    pub y1: usize,
    /// Σ (p − τ) over the box, > 0.
    pub score: f64,
}

impl MaskBox {
    /// The box on an image of `width` × `height` pixels, when the probability maps were
    /// `map_width` × `map_height`: x0 and y0 scaled and rounded down, x1 and y1 (exclusive) scaled
    /// and rounded up, so the box covers every image pixel its map pixels touch. The score stays
    /// the map's.
    pub fn scaled(self, map_width: usize, map_height: usize, width: usize, height: usize) -> Self {
        let down = |v: usize, size: usize, map: usize| v * size / map;
        let up = |v: usize, size: usize, map: usize| (v * size).div_ceil(map);
        MaskBox {
            x0: down(self.x0, width, map_width),
            y0: down(self.y0, height, map_height),
            x1: up(self.x1, width, map_width),
            y1: up(self.y1, height, map_height),
            ..self
        }
    }
}

/// Kadane's algorithm: `dp[i] = max(dp[i − 1], 0) + x[i]` is the best sum of a run ending at
/// i; the answer is the largest `dp[i]`, its run starting where dp last restarted. `None` for an
/// empty slice. NaN values make the result unspecified (callers check).
pub fn max_subarray(xs: &[f64]) -> Option<Subarray> {
    let mut best: Option<Subarray> = None;
    let (mut run, mut run_start) = (0.0f64, 0usize);
    for (i, &x) in xs.iter().enumerate() {
        if i == 0 || run <= 0.0 {
            run = x;
            run_start = i;
        } else {
            run += x;
        }
        if best.is_none_or(|b| run > b.sum) {
            best = Some(Subarray {
                start: run_start,
                end: i + 1,
                sum: run,
            });
        }
    }
    best
}

/// The maximum-sum sub-rectangle of a row-major `height × width` matrix: for every pair of rows
/// top ≤ bottom, Kadane over the column sums of rows top..=bottom. `None` when the matrix is
/// empty or `m.len() != height · width`.
pub fn max_rectangle(m: &[f64], height: usize, width: usize) -> Option<Rectangle> {
    if height == 0 || width == 0 || height.checked_mul(width)? != m.len() {
        return None;
    }
    let mut best: Option<Rectangle> = None;
    let mut cols = vec![0.0f64; width];
    for top in 0..height {
        cols.iter_mut().for_each(|c| *c = 0.0);
        for bottom in top..height {
            let row = &m[bottom * width..(bottom + 1) * width];
            for (c, v) in cols.iter_mut().zip(row) {
                *c += v;
            }
            let s = max_subarray(&cols)?;
            if best.is_none_or(|b| s.sum > b.sum) {
                best = Some(Rectangle {
                    x0: s.start,
                    y0: top,
                    x1: s.end,
                    y1: bottom + 1,
                    sum: s.sum,
                });
            }
        }
    }
    best
}

/// Boxes from per-class probability maps `probs` (C × H × W, row-major, as a CHW tensor): for
/// each class, the maximum-sum rectangle of p − τ; a class whose best sum is ≤ 0 (no pixel
/// above τ) gives no box. Boxes come in class order.
///
/// Errors (naming the field): a length that is not `classes · height · width`, an empty map, a
/// non-finite τ or probability.
pub fn mask_to_boxes(
    probs: &[f32],
    classes: usize,
    height: usize,
    width: usize,
    tau: f32,
) -> Result<Vec<MaskBox>, DataError> {
    let plane = height
        .checked_mul(width)
        .filter(|&p| p > 0)
        .ok_or_else(|| DataError::value("probs", format!("empty map {height}×{width}")))?;
    if classes.checked_mul(plane) != Some(probs.len()) {
        return Err(DataError::value(
            "probs",
            format!(
                "{} values, expected classes × height × width = {classes} × {height} × {width}",
                probs.len()
            ),
        ));
    }
    if !tau.is_finite() {
        return Err(DataError::value(
            "tau",
            format!("{tau}, expected a finite threshold"),
        ));
    }
    if let Some(i) = probs.iter().position(|p| !p.is_finite()) {
        return Err(DataError::value(
            "probs",
            format!("non-finite value {} at index {i}", probs[i]),
        ));
    }
    let mut boxes = Vec::new();
    let mut shifted = vec![0.0f64; plane];
    for class in 0..classes {
        let p = &probs[class * plane..(class + 1) * plane];
        for (s, &v) in shifted.iter_mut().zip(p) {
            *s = v as f64 - tau as f64;
        }
        if let Some(r) = max_rectangle(&shifted, height, width) {
            if r.sum > 0.0 {
                boxes.push(MaskBox {
                    class,
                    x0: r.x0,
                    y0: r.y0,
                    x1: r.x1,
                    y1: r.y1,
                    score: r.sum,
                });
            }
        }
    }
    Ok(boxes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute_1d(xs: &[f64]) -> f64 {
        let mut best = f64::NEG_INFINITY;
        for i in 0..xs.len() {
            for j in i + 1..=xs.len() {
                best = best.max(xs[i..j].iter().sum());
            }
        }
        best
    }

    fn rect_sum(m: &[f64], w: usize, r: &Rectangle) -> f64 {
        (r.y0..r.y1)
            .flat_map(|y| (r.x0..r.x1).map(move |x| (y, x)))
            .map(|(y, x)| m[y * w + x])
            .sum()
    }

    fn brute_2d(m: &[f64], h: usize, w: usize) -> f64 {
        let mut best = f64::NEG_INFINITY;
        for y0 in 0..h {
            for y1 in y0 + 1..=h {
                for x0 in 0..w {
                    for x1 in x0 + 1..=w {
                        let r = Rectangle {
                            x0,
                            y0,
                            x1,
                            y1,
                            sum: 0.0,
                        };
                        best = best.max(rect_sum(m, w, &r));
                    }
                }
            }
        }
        best
    }

    #[test]
    fn textbook_examples() {
        // CLRS 4.1's stock example: the best run is 18 + 20 − 7 + 12 = 43 at indices 7..11.
        let xs = [
            13.0, -3.0, -25.0, 20.0, -3.0, -16.0, -23.0, 18.0, 20.0, -7.0, 12.0, -5.0, -22.0, 15.0,
            -4.0, 7.0,
        ];
        assert_eq!(
            max_subarray(&xs),
            Some(Subarray {
                start: 7,
                end: 11,
                sum: 43.0
            })
        );
        // All negative: the largest element alone.
        assert_eq!(
            max_subarray(&[-3.0, -1.0, -2.0]),
            Some(Subarray {
                start: 1,
                end: 2,
                sum: -1.0
            })
        );
        assert_eq!(max_subarray(&[]), None);
        // Bentley's Programming Pearls 2-D example (4 × 4): best 15, rows 1..4, columns 0..2.
        let m = [
            0.0, -2.0, -7.0, 0.0, //
            9.0, 2.0, -6.0, 2.0, //
            -4.0, 1.0, -4.0, 1.0, //
            -1.0, 8.0, 0.0, -2.0,
        ];
        assert_eq!(
            max_rectangle(&m, 4, 4),
            Some(Rectangle {
                x0: 0,
                y0: 1,
                x1: 2,
                y1: 4,
                sum: 15.0
            })
        );
        assert_eq!(max_rectangle(&m, 3, 4), None);
        assert_eq!(max_rectangle(&[], 0, 0), None);
    }

    #[test]
    fn boxes_by_hand() {
        // Class 0: a 2 × 3 blob of 0.9 at rows 1..3, columns 2..5 in a 4 × 6 map of 0.1;
        // class 1: everything 0.2 (below τ, no box); class 2: one hot pixel at (row 3, col 0).
        let (h, w) = (4, 6);
        let mut probs = vec![0.1f32; 3 * h * w];
        for y in 1..3 {
            for x in 2..5 {
                probs[y * w + x] = 0.9;
            }
        }
        for v in &mut probs[h * w..2 * h * w] {
            *v = 0.2;
        }
        for v in &mut probs[2 * h * w..] {
            *v = 0.0;
        }
        probs[2 * h * w + 3 * w] = 0.8;
        let boxes = mask_to_boxes(&probs, 3, h, w, 0.5).unwrap();
        assert_eq!(boxes.len(), 2);
        let b = boxes[0];
        assert_eq!((b.class, b.x0, b.y0, b.x1, b.y1), (0, 2, 1, 5, 3));
        assert!((b.score - 6.0 * 0.4).abs() < 1e-6);
        let b = boxes[1];
        assert_eq!((b.class, b.x0, b.y0, b.x1, b.y1), (2, 0, 3, 1, 4));
        assert!((b.score - 0.3).abs() < 1e-6);
    }

    #[test]
    fn bad_input_is_an_error() {
        let e = mask_to_boxes(&[0.5; 5], 1, 2, 3, 0.5).unwrap_err();
        assert!(
            e.to_string().contains("probs") && e.to_string().contains("5 values"),
            "{e}"
        );
        assert!(mask_to_boxes(&[0.5; 6], 1, 2, 3, f32::NAN).is_err());
        assert!(mask_to_boxes(&[], 1, 0, 3, 0.5).is_err());
        let e = mask_to_boxes(&[0.5, f32::NAN], 1, 1, 2, 0.5).unwrap_err();
        assert!(e.to_string().contains("index 1"), "{e}");
    }

    fn small_matrix() -> impl Strategy<Value = (usize, usize, Vec<f64>)> {
        (1usize..=6, 1usize..=6).prop_flat_map(|(h, w)| {
            // Integers keep sums exact; the offset makes all-negative matrices common.
            (
                Just(h),
                Just(w),
                (-12i32..=3),
                prop::collection::vec(-9i32..=9, h * w),
            )
                .prop_map(|(h, w, off, v)| {
                    (h, w, v.into_iter().map(|x| (x + off) as f64).collect())
                })
        })
    }

    #[test]
    fn boxes_scale_out_to_every_touched_image_pixel() {
        let b = MaskBox {
            class: 1,
            x0: 2,
            y0: 1,
            x1: 4,
            y1: 3,
            score: 2.0,
        };
        // A 4 × 4 map on a 10 × 6 image: columns 2..4 → 5..10, rows 1..3 → 1..5 (1.5 down,
        // 4.5 up); the same size changes nothing.
        let s = b.scaled(4, 4, 10, 6);
        assert_eq!(
            (s.class, s.x0, s.y0, s.x1, s.y1, s.score),
            (1, 5, 1, 10, 5, 2.0)
        );
        assert_eq!(b.scaled(4, 4, 4, 4), b);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"class":1,"x0":2,"y0":1,"x1":4,"y1":3,"score":2.0}"#
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn kadane_equals_brute_force(
            off in -10i32..=3,
            v in prop::collection::vec(-9i32..=9, 1..=14),
        ) {
            let xs: Vec<f64> = v.iter().map(|&x| (x + off) as f64).collect();
            let s = max_subarray(&xs).unwrap();
            prop_assert_eq!(s.sum, brute_1d(&xs));
            prop_assert!(s.start < s.end && s.end <= xs.len());
            prop_assert_eq!(xs[s.start..s.end].iter().sum::<f64>(), s.sum);
        }

        #[test]
        fn rectangle_equals_brute_force((h, w, m) in small_matrix()) {
            let r = max_rectangle(&m, h, w).unwrap();
            prop_assert_eq!(r.sum, brute_2d(&m, h, w));
            prop_assert!(r.y0 < r.y1 && r.y1 <= h && r.x0 < r.x1 && r.x1 <= w);
            prop_assert_eq!(rect_sum(&m, w, &r), r.sum);
        }

        #[test]
        fn boxes_equal_brute_force(
            (h, w, m) in small_matrix(),
            classes in 1usize..=3,
        ) {
            // Probabilities in [0, 1] from the integers, τ = 0.5; one plane per class, shifted.
            let plane = h * w;
            let probs: Vec<f32> = (0..classes)
                .flat_map(|c| m.iter().map(move |&x| (((x + 21.0 + c as f64) / 33.0).clamp(0.0, 1.0)) as f32))
                .collect();
            let boxes = mask_to_boxes(&probs, classes, h, w, 0.5).unwrap();
            let mut k = 0;
            for c in 0..classes {
                let shifted: Vec<f64> = probs[c * plane..(c + 1) * plane]
                    .iter()
                    .map(|&p| p as f64 - 0.5f32 as f64)
                    .collect();
                let best = brute_2d(&shifted, h, w);
                if best > 0.0 {
                    let b = boxes[k];
                    k += 1;
                    prop_assert_eq!(b.class, c);
                    prop_assert!((b.score - best).abs() < 1e-9);
                    let r = Rectangle { x0: b.x0, y0: b.y0, x1: b.x1, y1: b.y1, sum: 0.0 };
                    prop_assert!((rect_sum(&shifted, w, &r) - best).abs() < 1e-9);
                }
            }
            prop_assert_eq!(k, boxes.len());
        }
    }
}
