//! The gradient-norm heat map's table: layers × samples, made readable when a model has hundreds
//! of parameters or a run thousands of samples.
//!
//! * Rows: parameters in order of first appearance. Above [`MAX_ROWS`], parameters are grouped by
//!   their longest dotted prefix that leaves at most [`MAX_ROWS`] groups (`features.3.*`), and a
//!   group's norm is the L2 norm of all its gradients together, √(Σ‖g_i‖²), the quantity gradient
//!   clipping uses. NaN and ∞ propagate through that sum. If even one-component prefixes are too
//!   many, every k-th group is kept.
//! * Columns: samples in file order. Above [`MAX_COLUMNS`], consecutive samples are binned; a bin
//!   shows NaN if any sample in it is NaN, else +∞ if any is, else the geometric mean of its
//!   positive norms (0 when all are 0), so a single blow-up is never averaged away.

use super::grad_norms::GradSample;
use kestrel_metrics::heat_map::HeatMap;
use std::collections::HashMap;

/// At most this many rows are drawn.
pub const MAX_ROWS: usize = 60;
/// At most this many columns are drawn.
pub const MAX_COLUMNS: usize = 300;

/// The first `depth` dotted components of `name`.
fn prefix(name: &str, depth: usize) -> &str {
    match name.match_indices('.').nth(depth.saturating_sub(1)) {
        Some((i, _)) if depth > 0 => &name[..i],
        _ => name,
    }
}

/// Distinct values of `key` over `names`, in order of first appearance.
fn distinct<'a>(names: &'a [String], key: impl Fn(&'a str) -> &'a str) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .map(|n| key(n))
        .filter(|k| seen.insert(*k))
        .collect()
}

/// Row labels and, for each parameter name, its row (or `None` when subsampled away).
pub fn group_rows(names: &[String], max_rows: usize) -> (Vec<String>, HashMap<String, usize>) {
    let max_rows = max_rows.max(1);
    let all = distinct(names, |n| n);
    if all.len() <= max_rows {
        let rows: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        let index = rows
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        return (rows, index);
    }
    let depth_max = all.iter().map(|n| n.split('.').count()).max().unwrap_or(1);
    for depth in (1..depth_max).rev() {
        let groups = distinct(names, |n| prefix(n, depth));
        if groups.len() <= max_rows {
            let pos: HashMap<&str, usize> =
                groups.iter().enumerate().map(|(i, g)| (*g, i)).collect();
            let mut count = vec![0usize; groups.len()];
            let index: HashMap<String, usize> = all
                .iter()
                .map(|n| {
                    let g = pos[prefix(n, depth)];
                    count[g] += 1;
                    (n.to_string(), g)
                })
                .collect();
            let rows = groups
                .iter()
                .zip(&count)
                .map(|(g, &c)| {
                    if c == 1 && all.contains(g) {
                        g.to_string()
                    } else {
                        format!("{g}.* ({c})")
                    }
                })
                .collect();
            return (rows, index);
        }
    }
    // Too many even at the top level: keep every k-th parameter.
    let k = all.len().div_ceil(max_rows);
    let kept: Vec<&str> = all.iter().step_by(k).copied().collect();
    let rows = kept
        .iter()
        .map(|n| format!("{n} (1 of {k})"))
        .collect::<Vec<_>>();
    let index = kept
        .iter()
        .enumerate()
        .map(|(i, n)| (n.to_string(), i))
        .collect();
    (rows, index)
}

/// Combines norms of one bin of samples (see the module documentation).
fn bin_value(values: &[f64]) -> Option<f64> {
    match values {
        [] => return None,
        [one] => return Some(*one),
        _ => {}
    }
    if values.iter().any(|v| v.is_nan()) {
        return Some(f64::NAN);
    }
    if values.contains(&f64::INFINITY) {
        return Some(f64::INFINITY);
    }
    let logs: Vec<f64> = values
        .iter()
        .filter(|&&v| v > 0.0)
        .map(|v| v.ln())
        .collect();
    if logs.is_empty() {
        return Some(values.iter().copied().fold(0.0, f64::min));
    }
    Some((logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

/// The heat map of `samples` with at most `max_rows` rows and `max_columns` columns.
pub fn heat_map(samples: &[GradSample], max_rows: usize, max_columns: usize) -> HeatMap {
    let names: Vec<String> = samples
        .iter()
        .flat_map(|s| s.layers.iter().map(|(n, _)| n.clone()))
        .collect();
    let (rows, index) = group_rows(&names, max_rows);
    // Group norms per sample: √(Σ norm²) over the group's parameters present in the sample.
    let per_sample: Vec<Vec<Option<f64>>> = samples
        .iter()
        .map(|s| {
            let mut ss: Vec<Option<f64>> = vec![None; rows.len()];
            for (name, norm) in &s.layers {
                if let Some(&r) = index.get(name) {
                    let acc = ss[r].get_or_insert(0.0);
                    *acc += norm * norm;
                }
            }
            ss.into_iter().map(|v| v.map(f64::sqrt)).collect()
        })
        .collect();
    let bins = samples.len().div_ceil(max_columns.max(1)).max(1);
    let chunks: Vec<std::ops::Range<usize>> = (0..samples.len())
        .step_by(bins)
        .map(|a| a..(a + bins).min(samples.len()))
        .collect();
    let values = (0..rows.len())
        .map(|r| {
            chunks
                .iter()
                .map(|c| {
                    let vals: Vec<f64> =
                        per_sample[c.clone()].iter().filter_map(|s| s[r]).collect();
                    bin_value(&vals)
                })
                .collect()
        })
        .collect();
    let columns = chunks
        .iter()
        .map(|c| format!("{}/{}", samples[c.start].epoch, samples[c.start].step))
        .collect();
    let x_desc = if bins > 1 {
        format!(
            "sample (epoch/step; {} samples in bins of {bins})",
            samples.len()
        )
    } else {
        "sample (epoch/step)".to_string()
    };
    HeatMap {
        title: "Gradient L2 norm per layer".into(),
        rows,
        columns,
        x_desc,
        value_desc: "norm (log10 colour)".into(),
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(step: usize, layers: &[(&str, f64)]) -> GradSample {
        GradSample {
            epoch: 1,
            step,
            layers: layers.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn prefixes_cut_at_the_nth_dot() {
        assert_eq!(prefix("features.3.conv.weight", 1), "features");
        assert_eq!(prefix("features.3.conv.weight", 2), "features.3");
        assert_eq!(prefix("fc", 2), "fc");
    }

    #[test]
    fn few_layers_stay_one_row_each() {
        let s = [sample(1, &[("b.w", 3.0), ("a.w", 4.0)])];
        let h = heat_map(&s, 10, 10);
        assert_eq!(h.rows, vec!["b.w", "a.w"]);
        assert_eq!(h.values, vec![vec![Some(3.0)], vec![Some(4.0)]]);
    }

    #[test]
    fn many_layers_group_by_prefix_with_the_joint_l2_norm() {
        // 3 blocks × 30 parameters: too many rows; blocks are the groups.
        let mut layers = Vec::new();
        for b in 0..3 {
            for p in 0..30 {
                layers.push((
                    format!("features.{b}.conv{p}.weight"),
                    (b * 30 + p) as f64 * 0.1,
                ));
            }
        }
        let refs: Vec<(&str, f64)> = layers.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let h = heat_map(&[sample(1, &refs)], 60, 10);
        assert_eq!(
            h.rows,
            vec![
                "features.0.* (30)",
                "features.1.* (30)",
                "features.2.* (30)"
            ]
        );
        for b in 0..3 {
            // Brute force: the norm of the concatenated gradients.
            let want = layers[b * 30..(b + 1) * 30]
                .iter()
                .map(|(_, v)| v * v)
                .sum::<f64>()
                .sqrt();
            let got = h.values[b][0].unwrap();
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn hundreds_of_flat_names_are_subsampled_within_the_limit() {
        let layers: Vec<(String, f64)> = (0..500).map(|i| (format!("p{i}"), 1.0)).collect();
        let refs: Vec<(&str, f64)> = layers.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        let h = heat_map(&[sample(1, &refs)], 60, 10);
        assert!(h.rows.len() <= 60 && h.rows.len() >= 50, "{}", h.rows.len());
        assert_eq!(h.rows[0], "p0 (1 of 9)");
    }

    #[test]
    fn non_finite_norms_propagate_through_groups_and_bins() {
        let mut samples = Vec::new();
        for step in 0..10 {
            let v = match step {
                3 => f64::NAN,
                7 => f64::INFINITY,
                _ => 10f64.powi(step as i32 % 3),
            };
            samples.push(sample(step, &[("a.x", v), ("a.y", 0.0)]));
        }
        // Rows: a.x and a.y grouped only if limited to one row.
        let h = heat_map(&samples, 1, 5);
        assert_eq!(h.rows, vec!["a.* (2)"]);
        assert_eq!(h.columns, vec!["1/0", "1/2", "1/4", "1/6", "1/8"]);
        let v: Vec<f64> = h.values[0].iter().map(|v| v.unwrap()).collect();
        // Bins of two samples: (1, 10), (100, NaN), (10, 100), (1, inf), (100, 1).
        assert!((v[0] - 10f64.sqrt()).abs() < 1e-9);
        assert!(v[1].is_nan());
        assert!((v[2] - 1000f64.sqrt()).abs() < 1e-9);
        assert_eq!(v[3], f64::INFINITY);
        let zeros = heat_map(&[sample(0, &[("z", 0.0)])], 5, 5);
        assert_eq!(zeros.values, vec![vec![Some(0.0)]]);
    }

    #[test]
    fn layers_absent_from_a_sample_are_missing_cells() {
        let s = [sample(1, &[("a", 1.0)]), sample(2, &[("b", 2.0)])];
        let h = heat_map(&s, 10, 10);
        assert_eq!(h.values, vec![vec![Some(1.0), None], vec![None, Some(2.0)]]);
    }
}
