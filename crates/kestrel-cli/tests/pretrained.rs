//! `kestrel predict --arch NAME --weights FILE` and `kestrel export --arch ... --weights ...` on
//! torchvision state dicts written by PyTorch (tools/torch_fixtures.py): a MobileNetV2 of width
//! 0.1 with 10 classes, saved as zip `.pth`, legacy `.pth` and `.safetensors`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{kestrel, stderr};

fn fixture(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kestrel-nn/tests/fixtures/import");
    dir.join(name).to_str().unwrap().to_string()
}

/// A 300×200 picture (resized to 256 on the short side, then centre-cropped to 224).
fn image(dir: &Path) -> PathBuf {
    let path = dir.join("picture.png");
    image::RgbImage::from_fn(300, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y * 3 % 256) as u8, ((x + y) % 256) as u8])
    })
    .save(&path)
    .unwrap();
    path
}

fn predict(weights: &str, arch: &str, width: &str, img: &Path) -> Output {
    kestrel(&[
        "predict",
        "--arch",
        arch,
        "--width",
        width,
        "--weights",
        weights,
        "--top-k",
        "3",
        "--json",
        img.to_str().unwrap(),
    ])
}

#[test]
fn all_three_formats_load_and_agree() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let mut tops = Vec::new();
    for file in [
        "mnv2_w010.pth",
        "mnv2_w010_legacy.pth",
        "mnv2_w010.safetensors",
    ] {
        let o = predict(&fixture(file), "mobilenet-v2", "0.1", &img);
        assert_eq!(o.status.code(), Some(0), "{file}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let top = v[0]["top"].as_array().unwrap().clone();
        assert_eq!(top.len(), 3, "{file}");
        // 10 classes, not ImageNet's 1000: numbered labels.
        assert_eq!(top[0]["label"], format!("class {}", top[0]["class"]));
        tops.push(top);
    }
    // The three files hold the same values (exact in f16, bf16 and f32).
    for t in &tops[1..] {
        for (a, b) in t.iter().zip(&tops[0]) {
            assert_eq!(a["class"], b["class"]);
            let (a, b) = (a["prob"].as_f64().unwrap(), b["prob"].as_f64().unwrap());
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}

#[test]
fn bad_weight_files_exit_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    // A pickle asking for os.system: refused before anything runs.
    let o = predict(&fixture("evil_os_system.pth"), "mobilenet-v2", "0.1", &img);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("os.system"), "{}", stderr(&o));
    // A truncated file.
    let whole = std::fs::read(fixture("mnv2_w010.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let o = predict(cut.to_str().unwrap(), "mobilenet-v2", "0.1", &img);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cut.pth") && stderr(&o).contains("truncated"),
        "{}",
        stderr(&o)
    );
    // Another architecture's file: missing and unexpected keys are listed.
    let o = predict(&fixture("mnv2_w010.safetensors"), "resnet18", "1", &img);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("missing") && e.contains("mobilenet-v2"), "{e}");
    // The right architecture at the wrong width: shape mismatches.
    let o = predict(&fixture("mnv2_w010.pth"), "mobilenet-v2", "1", &img);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("shape"), "{}", stderr(&o));
    // Usage errors.
    let o = predict(&fixture("mnv2_w010.pth"), "resnet18", "0.5", &img);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--width"), "{}", stderr(&o));
    let o = predict(&fixture("mnv2_w010.pth"), "vgg16", "1", &img);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("vgg16"), "{}", stderr(&o));
}

#[test]
fn pretrained_weights_export_to_onnx_and_plan() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["onnx", "plan"] {
        let out = dir.path().join(format!("m.{format}"));
        let o = kestrel(&[
            "export",
            "--arch",
            "mobilenet-v2",
            "--width",
            "0.1",
            "--weights",
            &fixture("mnv2_w010.safetensors"),
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{format}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["classes"], 10);
        assert_eq!(v["resolution"], 224);
        assert!(std::fs::metadata(&out).unwrap().len() > 100_000);
    }
}
