//! kestrel's ImageNet evaluation preprocessing against torchvision's (`Resize(256)`,
//! `CenterCrop(224)`, `ToTensor`, `Normalize`) on PIL images, from the fixture written by
//! `tools/preprocess_fixture.py`: the uint8 crops must agree on at least 99 % of the values and
//! everywhere within one level, and the normalised tensor's samples and channel sums must agree.

use kestrel_data::image_io::load_rgb;
use kestrel_data::imagenet_preprocess::{crop_offset, resized_size, CenterCropEval};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Deserialize)]
struct Case {
    size: [u32; 2],
    resized: [u32; 2],
    crop_offset: [i64; 2],
    channel_sums: [f64; 3],
    samples: Vec<(usize, f32)>,
}

#[derive(Deserialize)]
struct Expected {
    cases: BTreeMap<String, Case>,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imagenet_preprocess")
}

#[test]
fn matches_torchvision_on_pil_images() {
    let dir = fixtures();
    let expected: Expected =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected.cases.len(), 3);
    let t = CenterCropEval::IMAGENET;
    for (name, case) in &expected.cases {
        let img = load_rgb(&dir.join(format!("{name}.png"))).unwrap();
        assert_eq!(img.dimensions(), (case.size[0], case.size[1]), "{name}");
        let (w, h) = resized_size(img.width(), img.height(), 256).unwrap();
        assert_eq!([w, h], case.resized, "{name}: resized size");
        assert_eq!(
            [crop_offset(w, 224), crop_offset(h, 224)],
            case.crop_offset,
            "{name}: crop offset"
        );

        let ours = t.crop_image(&img).unwrap();
        let theirs = load_rgb(&dir.join(format!("{name}_crop.png"))).unwrap();
        assert_eq!(ours.dimensions(), theirs.dimensions(), "{name}");
        let total = theirs.as_raw().len();
        let mut equal = 0;
        let mut worst = 0;
        for (a, b) in ours.as_raw().iter().zip(theirs.as_raw()) {
            let d = a.abs_diff(*b);
            equal += usize::from(d == 0);
            worst = worst.max(d);
        }
        let frac = equal as f64 / total as f64;
        eprintln!("{name}: {equal}/{total} uint8 values equal ({frac:.6}), max difference {worst}");
        assert!(frac >= 0.99, "{name}: only {frac} of the values equal");
        assert!(worst <= 1, "{name}: a value differs by {worst} levels");

        // The normalised tensor: where the uint8 values agree, the samples agree to float
        // rounding; each channel sum may move by one level's worth per differing value.
        let plane = 224 * 224;
        let mut x = Vec::new();
        t.push_chw(&img, &mut x).unwrap();
        assert_eq!(x.len(), 3 * plane);
        let raw = |i: usize| (i % plane) * 3 + i / plane;
        for &(i, v) in &case.samples {
            if ours.as_raw()[raw(i)] == theirs.as_raw()[raw(i)] {
                assert!((x[i] - v).abs() <= 1e-5, "{name}[{i}]: {} vs {v}", x[i]);
            }
        }
        for (c, &want) in case.channel_sums.iter().enumerate() {
            let got: f64 = x[c * plane..(c + 1) * plane]
                .iter()
                .map(|&v| f64::from(v))
                .sum();
            let levels: u32 = (0..plane)
                .map(|p| u32::from(ours.as_raw()[p * 3 + c].abs_diff(theirs.as_raw()[p * 3 + c])))
                .sum();
            let std = f64::from(t.normalize.std[c]);
            let tol = 1e-2 + f64::from(levels) / (255.0 * std);
            assert!(
                (got - want).abs() <= tol,
                "{name}: channel {c} sum {got} vs {want}"
            );
        }
    }
}
