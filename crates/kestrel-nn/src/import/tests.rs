//! End-to-end tests against files written by PyTorch 2.15 / torchvision 0.29 / safetensors
//! (`tools/torch_fixtures.py`) and logits computed by PyTorch.

use super::formula::{formula, formula_state_dict};
use super::*;
use crate::models::zoo::{Arch, Classifier, ClassifierSpec};
use burn::tensor::{Device, Tensor, TensorData};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

fn read_f32(name: &str) -> Vec<f32> {
    std::fs::read(fixture(name))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn formula_input(device: &Device) -> Tensor<4> {
    let shape = [2, 3, 64, 64];
    Tensor::from_data(TensorData::new(formula("input", &shape), shape), device)
}

fn logits(model: &Classifier, device: &Device) -> Vec<f32> {
    model
        .forward(formula_input(device))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

/// |a − b| ≤ 1e-4 · (1 + max |b|) element-wise: f32 round-off over 50+ layers, relative to the
/// scale of the logits.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = 1.0 + want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * scale,
            "{what}[{i}]: {a} vs {b} (scale {scale})"
        );
    }
}

/// torchvision's key list for a model, filled by the formula (`num_batches_tracked` as int64).
fn torchvision_formula_dict(arch: &str) -> StateDict {
    let keys: Vec<(String, Vec<usize>, String)> = serde_json::from_slice(
        &std::fs::read(fixture(&format!("formula_{arch}_keys.json"))).unwrap(),
    )
    .unwrap();
    let floats: Vec<(String, Vec<usize>)> = keys
        .iter()
        .filter(|(_, _, d)| d == "torch.float32")
        .map(|(k, s, _)| (k.clone(), s.clone()))
        .collect();
    let mut sd = formula_state_dict(&floats);
    for (k, s, d) in &keys {
        if d == "torch.int64" {
            let t = TensorEntry {
                shape: s.clone(),
                dtype: DType::I64,
                values: Values::I64(vec![0; s.iter().product()]),
            };
            sd.insert(k.clone(), t).unwrap();
        }
    }
    assert_eq!(sd.len(), keys.len());
    sd
}

#[test]
fn formula_weights_give_torchvisions_logits() {
    let device = Device::flex();
    for (arch, name) in [
        (Arch::MobileNetV2, "mobilenet_v2"),
        (Arch::ResNet18, "resnet18"),
        (Arch::ResNet50, "resnet50"),
    ] {
        let sd = torchvision_formula_dict(name);
        let spec = ClassifierSpec {
            arch,
            width: 1.0,
            num_classes: 1000,
            activation: Default::default(),
        };
        let model = apply_state_dict(spec.init(&device), &sd).unwrap();
        let want = read_f32(&format!("formula_{name}_logits.f32"));
        assert_close(&logits(&model, &device), &want, name);
    }
}

#[test]
fn the_three_formats_hold_the_same_narrow_mobilenet() {
    let zip = read_state_dict(&fixture("mnv2_w010.pth")).unwrap();
    let legacy = read_state_dict(&fixture("mnv2_w010_legacy.pth")).unwrap();
    let st = read_state_dict(&fixture("mnv2_w010.safetensors")).unwrap();
    // 52 conv/BN groups → 314 tensors in torchvision's mobilenet_v2 (width 0.1, 10 classes).
    assert_eq!(zip.len(), 314);
    assert_eq!(
        zip.keys().collect::<Vec<_>>(),
        legacy.keys().collect::<Vec<_>>()
    );
    let mut names: Vec<&str> = zip.keys().collect();
    let mut st_names: Vec<&str> = st.keys().collect();
    names.sort();
    st_names.sort();
    assert_eq!(names, st_names);
    for (k, t) in zip.iter() {
        for (other, dtype) in [(&legacy, DType::F16), (&st, DType::BF16)] {
            let o = other.get(k).unwrap();
            assert_eq!(o.shape, t.shape, "{k}");
            assert_eq!(o.values, t.values, "{k}");
            if t.dtype == DType::F32 {
                assert_eq!(o.dtype, dtype, "{k}");
            }
        }
    }
    let nbt = zip.get("features.0.1.num_batches_tracked").unwrap();
    assert_eq!(
        (nbt.dtype, &nbt.values),
        (DType::I64, &Values::I64(vec![7]))
    );
    assert_eq!(zip.get("features.0.0.weight").unwrap().shape, [8, 3, 3, 3]);

    // Applied to kestrel's width-0.1 MobileNetV2, the logits are PyTorch's.
    let device = Device::flex();
    let want = read_f32("mnv2_w010_logits.f32");
    for sd in [&zip, &legacy, &st] {
        let spec = ClassifierSpec {
            arch: Arch::MobileNetV2,
            width: 0.1,
            num_classes: 10,
            activation: Default::default(),
        };
        let model = apply_state_dict(spec.init(&device), sd).unwrap();
        assert_close(&logits(&model, &device), &want, "mnv2_w010");
    }
}

#[test]
fn dtypes_views_and_offsets_match_pytorch() {
    #[derive(serde::Deserialize)]
    struct Expected {
        shape: Vec<usize>,
        float: bool,
        values: Vec<f64>,
    }
    let expected: std::collections::HashMap<String, Expected> =
        serde_json::from_slice(&std::fs::read(fixture("dtypes.json")).unwrap()).unwrap();
    for file in ["dtypes.pth", "dtypes_legacy.pth", "dtypes.safetensors"] {
        let sd = read_state_dict(&fixture(file)).unwrap();
        assert_eq!(sd.len(), expected.len(), "{file}");
        for (k, want) in &expected {
            let t = sd.get(k).unwrap_or_else(|| panic!("{file}: {k}"));
            assert_eq!(t.shape, want.shape, "{file}: {k}");
            match &t.values {
                Values::F32(v) => {
                    assert!(want.float, "{file}: {k}");
                    let w: Vec<f32> = want.values.iter().map(|&x| x as f32).collect();
                    assert_eq!(v, &w, "{file}: {k}");
                }
                Values::I64(v) => {
                    assert!(!want.float, "{file}: {k}");
                    let w: Vec<i64> = want.values.iter().map(|&x| x as i64).collect();
                    assert_eq!(v, &w, "{file}: {k}");
                }
            }
        }
        assert_eq!(sd.get("bf16").unwrap().dtype, DType::BF16);
        assert_eq!(sd.get("f64").unwrap().dtype, DType::F64);
    }
}

#[test]
fn malicious_pickles_are_refused_by_name() {
    for (file, global) in [
        ("evil_os_system.pth", "os.system"),
        ("evil_eval_zip.pth", "builtins.eval"),
    ] {
        let e = read_state_dict(&fixture(file)).unwrap_err();
        assert!(
            matches!(&e, ImportError::Read { source: ReadError::Forbidden(g), .. } if g == global),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains(file) && msg.contains(global), "{msg}");
    }
}

#[test]
fn truncated_files_are_reported_as_truncated_or_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "mnv2_w010.pth",
        "mnv2_w010_legacy.pth",
        "mnv2_w010.safetensors",
        "dtypes.pth",
    ] {
        let data = std::fs::read(fixture(file)).unwrap();
        let len = data.len();
        for cut in [len - 1, len - 100, len / 2, 2000, 300, 9, 1] {
            let path = dir.path().join(format!("cut-{cut}-{file}"));
            std::fs::write(&path, &data[..cut]).unwrap();
            let e = read_state_dict(&path).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("cut-{cut}-{file}")), "{msg}");
            assert!(
                matches!(
                    &e,
                    ImportError::Read {
                        source: ReadError::Corrupt(_) | ReadError::Tensor { .. },
                        ..
                    } | ImportError::UnknownFormat { .. }
                ),
                "{file} cut at {cut}: {msg}"
            );
        }
    }
    let e = read_state_dict(&dir.path().join("absent.pth")).unwrap_err();
    assert!(matches!(e, ImportError::Io { .. }), "{e}");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, not weights").unwrap();
    let e = read_state_dict(&text).unwrap_err();
    assert!(matches!(e, ImportError::UnknownFormat { .. }), "{e}");
}

#[test]
fn wrong_architecture_and_widths_list_every_difference() {
    let device = Device::flex();
    // A ResNet-18 state dict offered to MobileNetV2.
    let sd = torchvision_formula_dict("resnet18");
    let model = ClassifierSpec {
        arch: Arch::MobileNetV2,
        width: 1.0,
        num_classes: 1000,
        activation: Default::default(),
    }
    .init(&device);
    let e = apply_state_dict(model, &sd).unwrap_err();
    let ImportError::Mismatch { mismatch, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(mismatch.detected.as_deref(), Some("resnet18"));
    assert_eq!(mismatch.missing.len(), 262); // every MobileNetV2 float tensor
    assert_eq!(mismatch.unexpected.len(), 102); // ResNet-18's 122 keys but num_batches_tracked
    assert!(
        e.to_string()
            .contains("looks like a resnet18 state dict, not mobilenet-v2"),
        "{e}"
    );

    // The width-0.1 file loaded as ResNet-18, then as width-1 MobileNetV2.
    let path = fixture("mnv2_w010.pth");
    let e = load_classifier(Arch::ResNet18, &path, &device).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("mnv2_w010.pth") && msg.contains("looks like a mobilenet-v2"),
        "{msg}"
    );
    let e = load_classifier(Arch::MobileNetV2, &path, &device).unwrap_err();
    let ImportError::Mismatch { mismatch, .. } = &e else {
        panic!("{e}")
    };
    assert!(
        mismatch.missing.is_empty() && mismatch.unexpected.is_empty(),
        "{e}"
    );
    // Classes are inferred (10), so only the widths differ: every float tensor but the head's
    // BatchNorm (1280 channels at any width ≤ 1) and the classifier (torchvision: 258 differ
    // between mobilenet_v2() and mobilenet_v2(width_mult=0.1, num_classes=10), the classifier's
    // two among them).
    assert_eq!(mismatch.shapes.len(), 256, "{e}");
    assert!(
        mismatch.shapes.contains(&(
            "features.0.0.weight".into(),
            vec![32, 3, 3, 3],
            vec![8, 3, 3, 3]
        )),
        "{e}"
    );
    let e = load_classifier(Arch::MobileNetV1, &path, &device).unwrap_err();
    assert!(matches!(e, ImportError::UnsupportedArch { .. }), "{e}");
}

#[test]
fn load_classifier_infers_classes_and_drops_nothing() {
    // The zip fixture at width 0.1 through the lower-level API gives 10 classes; a partial state
    // dict (one key removed) names exactly that key.
    let device = Device::flex();
    let sd = read_state_dict(&fixture("mnv2_w010.safetensors")).unwrap();
    let mut partial = StateDict::new();
    for (k, t) in sd
        .iter()
        .filter(|(k, _)| *k != "features.5.conv.1.1.running_var")
    {
        partial.insert(k.to_string(), t.clone()).unwrap();
    }
    let model = ClassifierSpec {
        arch: Arch::MobileNetV2,
        width: 0.1,
        num_classes: 10,
        activation: Default::default(),
    }
    .init(&device);
    let e = apply_state_dict(model, &partial).unwrap_err();
    let ImportError::Mismatch { mismatch, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(mismatch.missing, ["features.5.conv.1.1.running_var"]);
    assert!(mismatch.unexpected.is_empty() && mismatch.shapes.is_empty());
}

fn narrow_mobilenet(num_classes: usize, device: &Device) -> Classifier {
    ClassifierSpec {
        arch: Arch::MobileNetV2,
        width: 0.1,
        num_classes,
        activation: Default::default(),
    }
    .init(device)
}

#[test]
fn fitting_weights_of_the_same_shape_is_the_exact_import() {
    let device = Device::flex();
    let sd = read_state_dict(&fixture("mnv2_w010.pth")).unwrap();
    let (model, report) =
        fit_weights(narrow_mobilenet(10, &device), &sd, Naming::Torchvision).unwrap();
    // 314 keys, 52 of them num_batches_tracked.
    assert_eq!(report.loaded, 262);
    assert!(report.reinitialised.is_empty() && report.unused.is_empty());
    assert_close(
        &logits(&model, &device),
        &read_f32("mnv2_w010_logits.f32"),
        "fit",
    );
}

#[test]
fn fine_tuning_reinitialises_a_head_of_another_size_and_keeps_the_backbone() {
    let device = Device::flex();
    let sd = read_state_dict(&fixture("mnv2_w010.pth")).unwrap();
    let exact = kestrel_state_dict(&apply_state_dict(narrow_mobilenet(10, &device), &sd).unwrap());
    let fresh = narrow_mobilenet(4, &device);
    let fresh_head = kestrel_state_dict(&fresh).get("classifier.weight").cloned();
    let (model, report) = fit_weights(fresh, &sd, Naming::Torchvision).unwrap();
    assert_eq!(report.loaded, 260);
    assert_eq!(
        report.reinitialised,
        ["classifier.weight", "classifier.bias"]
    );
    assert_eq!(report.unused, ["classifier.1.weight", "classifier.1.bias"]);
    let got = kestrel_state_dict(&model);
    for (k, t) in got.iter() {
        if k.starts_with("classifier.") {
            continue;
        }
        assert_eq!(t.values, exact.get(k).unwrap().values, "{k}");
    }
    assert_eq!(got.get("classifier.weight").cloned(), fresh_head);
}

#[test]
fn an_fcn_takes_its_backbone_from_torchvision_or_from_a_kestrel_classifier() {
    use crate::models::fcn::SegmenterSpec;
    use crate::upsample::UpsamplerKind;
    let device = Device::flex();
    let sd = read_state_dict(&fixture("mnv2_w010.pth")).unwrap();
    let classifier = apply_state_dict(narrow_mobilenet(10, &device), &sd).unwrap();
    let want = kestrel_state_dict(&classifier);
    let spec = SegmenterSpec::for_tests("fcn8s-mobilenet-v2", 0.1, 3, 8, UpsamplerKind::Bilinear);
    for (source, naming) in [(sd, Naming::Torchvision), (want.clone(), Naming::Kestrel)] {
        let (fcn, report) = fit_weights(spec.init(&device).unwrap(), &source, naming).unwrap();
        assert_eq!(report.loaded, 260);
        assert!(report.reinitialised.contains(&"score32.weight".to_string()));
        assert!(
            report
                .reinitialised
                .iter()
                .all(|n| !n.starts_with("backbone.")),
            "{:?}",
            report.reinitialised
        );
        assert_eq!(
            report.unused.len(),
            2,
            "the classifier: {:?}",
            report.unused
        );
        let got = kestrel_state_dict(&fcn);
        let mut backbone = 0;
        for (k, t) in want.iter() {
            if !k.starts_with("classifier.") {
                assert_eq!(got.get(k).unwrap().values, t.values, "{k}");
                backbone += 1;
            }
        }
        assert_eq!(backbone, 260);
    }
}

#[test]
fn weights_that_do_not_fit_the_backbone_are_refused_with_every_reason() {
    let device = Device::flex();
    let sd = read_state_dict(&fixture("mnv2_w010.pth")).unwrap();
    let wider = ClassifierSpec {
        arch: Arch::MobileNetV2,
        width: 0.25,
        num_classes: 10,
        activation: Default::default(),
    };
    let Err(ImportError::Mismatch { mismatch, .. }) =
        fit_weights(wider.init(&device), &sd, Naming::Torchvision)
    else {
        panic!("a width-0.1 file fitted a width-0.25 model")
    };
    assert_eq!(mismatch.expected, "mobilenet-v2");
    // The last 1×1 convolution: 1280 channels at width 0.1 and 0.25 alike (never narrowed), fed
    // by 32 (0.1) or 80 (0.25) channels.
    assert!(
        mismatch
            .shapes
            .iter()
            .any(|(k, want, _)| k == "features.18.0.weight" && want[1] == 80),
        "{mismatch}"
    );
    let resnet = ClassifierSpec {
        arch: Arch::ResNet18,
        width: 1.0,
        num_classes: 10,
        activation: Default::default(),
    };
    let Err(ImportError::Mismatch { mismatch, .. }) =
        fit_weights(resnet.init(&device), &sd, Naming::Torchvision)
    else {
        panic!("MobileNetV2 weights fitted a ResNet")
    };
    assert_eq!(mismatch.detected.as_deref(), Some("mobilenet-v2"));
    let v1 = ClassifierSpec {
        arch: Arch::MobileNetV1,
        width: 0.25,
        num_classes: 10,
        activation: Default::default(),
    };
    assert!(matches!(
        fit_weights(v1.init(&device), &sd, Naming::Torchvision),
        Err(ImportError::UnsupportedArch { .. })
    ));
}

#[test]
fn resnets_and_multitask_models_take_torchvision_backbones() {
    use crate::models::multitask::MultiTaskSpec;
    use crate::upsample::UpsamplerKind;
    let device = Device::flex();
    let sd = torchvision_formula_dict("resnet18");
    let resnet = ClassifierSpec {
        arch: Arch::ResNet18,
        width: 1.0,
        num_classes: 10,
        activation: Default::default(),
    };
    let (model, report) = fit_weights(resnet.init(&device), &sd, Naming::Torchvision).unwrap();
    // 20 convolution + BatchNorm groups (5 tensors each) and fc (ImageNet's 1000 classes).
    assert_eq!(report.loaded, 100);
    assert_eq!(report.reinitialised, ["fc.weight", "fc.bias"]);
    assert_eq!(report.unused, ["fc.weight", "fc.bias"]);
    let exact = kestrel_state_dict(
        &apply_state_dict(
            ClassifierSpec {
                num_classes: 1000,
                ..resnet
            }
            .init(&device),
            &sd,
        )
        .unwrap(),
    );
    let got = kestrel_state_dict(&model);
    assert_eq!(
        got.get("layer4.1.conv2.bn.running_var").unwrap().values,
        exact.get("layer4.1.conv2.bn.running_var").unwrap().values
    );

    let multitask = MultiTaskSpec {
        backbone: "fcn8s-resnet18".parse().unwrap(),
        width: 1.0,
        num_classes: 4,
        seg_classes: 3,
        upsampler: UpsamplerKind::Bilinear,
        cascade: false,
    };
    let (model, report) =
        fit_weights(multitask.init(&device).unwrap(), &sd, Naming::Torchvision).unwrap();
    assert_eq!(report.loaded, 100);
    assert!(report
        .reinitialised
        .contains(&"classifier.weight".to_string()));
    assert!(report
        .reinitialised
        .contains(&"fcn.score8.weight".to_string()));
    let got = kestrel_state_dict(&model);
    assert_eq!(
        got.get("layer4.1.conv2.bn.running_var").unwrap().values,
        exact.get("layer4.1.conv2.bn.running_var").unwrap().values
    );
}

#[test]
fn a_mobilenet_v1_is_seeded_from_a_kestrel_one() {
    let device = Device::flex();
    let v1 = |num_classes| {
        ClassifierSpec {
            arch: Arch::MobileNetV1,
            width: 0.25,
            num_classes,
            activation: Default::default(),
        }
        .init(&device)
    };
    let source = kestrel_state_dict(&v1(10));
    let (model, report) = fit_weights(v1(3), &source, Naming::Kestrel).unwrap();
    assert_eq!(
        report.reinitialised,
        ["classifier.weight", "classifier.bias"]
    );
    assert_eq!(report.unused, ["classifier.weight", "classifier.bias"]);
    let got = kestrel_state_dict(&model);
    for (k, t) in source.iter().filter(|(k, _)| !k.starts_with("classifier.")) {
        assert_eq!(got.get(k).unwrap().values, t.values, "{k}");
    }
    assert_eq!(report.loaded, source.len() - 2);
}

/// A safetensors file of the given header entries (JSON objects by name) and data bytes.
fn safetensors_file(dir: &Path, name: &str, header: &str, data: &[u8]) -> PathBuf {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn hostile_files_are_refused_before_anything_large_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    // An empty classifier weight of 10^12 rows: no data, but it would build 10^12 classes.
    let p = safetensors_file(
        dir.path(),
        "classes.safetensors",
        r#"{"fc.weight":{"dtype":"F32","shape":[1000000000000,0],"data_offsets":[0,0]}}"#,
        &[],
    );
    let e = load_classifier(Arch::ResNet18, &p, &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("classes.safetensors") && e.contains("1 to 100000") && e.contains("fc.weight"),
        "{e}"
    );
    // Thousands of tensors over the same 4 KiB of data: each alone fits, together they would
    // decode to far more than the file holds.
    let entries: Vec<String> = (0..2000)
        .map(|i| format!(r#""t{i}":{{"dtype":"F32","shape":[1024],"data_offsets":[0,4096]}}"#))
        .collect();
    let p = safetensors_file(
        dir.path(),
        "overlap.safetensors",
        &format!("{{{}}}", entries.join(",")),
        &[0; 4096],
    );
    let e = read_state_dict(&p).unwrap_err().to_string();
    assert!(
        e.contains("overlap.safetensors") && e.contains("decoding limit"),
        "{e}"
    );
}
