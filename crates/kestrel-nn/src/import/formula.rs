//! The deterministic fill of `tools/torch_fixtures.py`, to rebuild its state dicts in Rust
//! without shipping weights. See that script for the definition.

use super::state_dict::{StateDict, TensorEntry};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn fnv1a64(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The formula's values of tensor `name` with `shape`.
pub fn formula(name: &str, shape: &[usize]) -> Vec<f32> {
    let h = fnv1a64(name);
    let n: usize = shape.iter().product();
    let fan_in: usize = shape.iter().skip(1).product();
    (0..n as u64)
        .map(|j| {
            let u = (splitmix64(h.wrapping_add(j.wrapping_mul(GOLDEN))) >> 11) as f64
                / (1u64 << 53) as f64;
            let v = if name == "input" {
                2.0 * u - 1.0
            } else if name.ends_with("running_var") {
                0.5 + u
            } else if name.ends_with("running_mean") || name.ends_with("bias") {
                (2.0 * u - 1.0) / 10.0
            } else if shape.len() == 1 {
                0.8 + 0.4 * u
            } else {
                (2.0 * u - 1.0) * (6.0 / fan_in as f64).sqrt()
            };
            v as f32
        })
        .collect()
}

/// A state dict with the given torchvision names and shapes, filled by the formula.
pub fn formula_state_dict(names: &[(String, Vec<usize>)]) -> StateDict {
    let mut sd = StateDict::new();
    for (name, shape) in names {
        sd.insert(
            name.clone(),
            TensorEntry::f32(shape.clone(), formula(name, shape)),
        )
        .expect("unique names");
    }
    sd
}
