//! Hostile files and faults (issue "Hostile files and faults"): each crafted file is tiny and
//! generated here, and `kestrel` reads it in a child process whose address space is limited to
//! 1 GiB. Before the fixes each of them asked for gigabytes to terabytes (and the process
//! aborted); now each is refused with exit 2 and a message naming the file and the limit, or —
//! for a legitimate but extreme image — answered within the limit.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

mod common;
use common::{assert_exit_2_naming, command, stderr};

/// The address-space limit of every run here.
const ADDRESS_SPACE: u64 = 1 << 30;

/// Runs `kestrel args` with its address space limited to [`ADDRESS_SPACE`] and `env` set.
fn kestrel_limited(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command();
    cmd.args(args).envs(env.iter().copied());
    // SAFETY: the closure runs in the child between fork and exec and only calls `setrlimit`,
    // which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    cmd.output().expect("the kestrel binary runs")
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// torchvision-format weights of a MobileNetV2 of width 0.1 with 10 classes (a real file).
fn small_weights() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kestrel-nn/tests/fixtures/import");
    dir.join("mnv2_w010.safetensors")
        .to_str()
        .unwrap()
        .to_string()
}

/// A safetensors file of the given JSON header and data.
fn safetensors(dir: &Path, name: &str, header: &str, data: &[u8]) -> PathBuf {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `kestrel predict --arch ARCH --width W --weights FILE IMAGE --json`, limited.
fn predict_limited(arch: &str, width: &str, weights: &str, image: &Path) -> Output {
    kestrel_limited(
        &[
            "predict",
            "--arch",
            arch,
            "--width",
            width,
            "--weights",
            weights,
            "--json",
            path_str(image),
        ],
        &[],
    )
}

#[test]
fn a_normal_prediction_fits_in_the_limit() {
    // The limit itself is no obstacle: the refusals below come from kestrel's checks.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ok.png");
    common::solid_png(&img, 300, 200, [10, 200, 30]);
    let o = predict_limited("mobilenet-v2", "0.1", &small_weights(), &img);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_weights_file_cannot_ask_for_a_huge_class_count() {
    // An empty classifier weight of 10^12 rows: no data, and 10^12 classes if believed.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ok.png");
    common::solid_png(&img, 64, 64, [1, 2, 3]);
    let w = safetensors(
        dir.path(),
        "classes.safetensors",
        r#"{"fc.weight":{"dtype":"F32","shape":[1000000000000,0],"data_offsets":[0,0]}}"#,
        &[],
    );
    let o = predict_limited("resnet18", "1", path_str(&w), &img);
    assert_exit_2_naming(&o, &["classes.safetensors", "fc.weight", "100000"]);
}

#[test]
fn tensors_sharing_data_cannot_decode_past_the_files_size() {
    // 20,000 entries over the same 64 KiB: 1.3 GB of tensors from a 1.4 MB file.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ok.png");
    common::solid_png(&img, 64, 64, [1, 2, 3]);
    let entries: Vec<String> = (0..20_000)
        .map(|i| format!(r#""t{i}":{{"dtype":"F32","shape":[16384],"data_offsets":[0,65536]}}"#))
        .collect();
    let w = safetensors(
        dir.path(),
        "overlap.safetensors",
        &format!("{{{}}}", entries.join(",")),
        &[0; 65536],
    );
    let o = predict_limited("resnet18", "1", path_str(&w), &img);
    assert_exit_2_naming(&o, &["overlap.safetensors", "decoding limit"]);
}

#[test]
fn a_very_thin_image_is_cropped_without_resizing_all_of_it() {
    // 1 × 1,000,000 pixels: resized to 256 on the short side it would be 256 × 256,000,000
    // (196 GB of RGB); only the 224 × 224 crop is resampled, so the prediction just works.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("thin.png");
    common::solid_png(&img, 1, 1_000_000, [200, 100, 50]);
    let o = predict_limited("mobilenet-v2", "0.1", &small_weights(), &img);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["top"].as_array().unwrap().len(), 3, "{v}");
}

#[test]
fn an_image_declaring_huge_dimensions_is_refused_from_its_header() {
    // A PNG header of 100,000 × 100,000 pixels and a little compressed data: 10^10 pixels.
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("bomb.png");
    let mut file = Vec::new();
    let mut enc = png::Encoder::new(&mut file, 100_000, 100_000);
    enc.set_color(png::ColorType::Rgb);
    let mut writer = enc.write_header().unwrap();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, &vec![0u8; 1 << 20]).unwrap();
    writer
        .write_chunk(png::chunk::IDAT, &z.finish().unwrap())
        .unwrap();
    drop(writer);
    std::fs::write(&img, &file).unwrap();
    let o = predict_limited("mobilenet-v2", "0.1", &small_weights(), &img);
    assert_exit_2_naming(&o, &["bomb.png", "100000×100000", "67108864 pixels"]);
}

#[test]
fn a_panic_inside_a_verb_exits_1_with_the_hooks_message() {
    for (where_, what) in [("main", "asked for a panic"), ("worker", "in a worker")] {
        let o = kestrel_limited(&["info", "resnet18"], &[("KESTREL_DEBUG_PANIC", where_)]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{where_}: {err}");
        assert!(
            err.starts_with("internal error: ")
                && err.contains(what)
                && err.contains("panic_exit.rs:")
                && err.contains("please report"),
            "{where_}: {err}"
        );
    }
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // `kestrel info --json | head -c 0`: the reader is gone before kestrel writes.
    let mut child = command()
        .args(["info", "resnet50", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn a_data_spec_cannot_ask_for_a_trillion_images() {
    // Labels and indices of 10^12 `shapes` images would take terabytes.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = kestrel_limited(
        &[
            "train",
            "--data",
            "shapes:n=1000000000000",
            "--out",
            path_str(&out),
        ],
        &[],
    );
    assert_exit_2_naming(&o, &["`n`", "10000000", "1000000000000"]);
}

#[test]
fn a_run_predicts_very_wide_and_very_tall_images_within_the_limit() {
    // A run at 224 px resizes each image to 224 × 224: a 1,000,000 × 1 image once made a
    // 3.6 GB intermediate (the `image` crate filters columns first).
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = common::kestrel(&[
        "train",
        "--data",
        "shapes:n=24,size=32,classes=3,seed=2",
        "--resolution",
        "224",
        "--width",
        "0.25",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--out",
        path_str(&run),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (wide, tall) = (dir.path().join("wide.png"), dir.path().join("tall.png"));
    common::solid_png(&wide, 1_000_000, 1, [200, 100, 50]);
    common::solid_png(&tall, 1, 1_000_000, [200, 100, 50]);
    let o = kestrel_limited(
        &[
            "predict",
            "--run",
            path_str(&run),
            "--json",
            path_str(&wide),
            path_str(&tall),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The same colour either way: the same scores.
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["top"], v[1]["top"], "{v}");
}

/// A PyTorch zip checkpoint (stored entries `a/data.pkl` and `a/data/0`) whose state dict maps
/// `keys` names to one and the same tensor of `numel` floats: the pickle builds the tensor once
/// and memoises it, every further key fetches it from the memo (a few bytes each).
fn shared_storage_pth(keys: usize, numel: i32) -> Vec<u8> {
    let text = |p: &mut Vec<u8>, s: &str| {
        p.push(b'X'); // BINUNICODE
        p.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    };
    let int = |p: &mut Vec<u8>, v: i32| {
        p.push(b'J'); // BININT
        p.extend_from_slice(&v.to_le_bytes());
    };
    let mut p = vec![0x80, 2, b'}', b'(']; // PROTO 2, EMPTY_DICT, MARK
    text(&mut p, "t0");
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.push(b'('); // the persistent id ('storage', FloatStorage, '0', 'cpu', numel)
    text(&mut p, "storage");
    p.extend_from_slice(b"ctorch\nFloatStorage\n");
    text(&mut p, "0");
    text(&mut p, "cpu");
    int(&mut p, numel);
    p.extend_from_slice(b"tQ"); // TUPLE, BINPERSID
    int(&mut p, 0); // storage offset
    p.push(b'(');
    int(&mut p, numel);
    p.push(b't'); // size
    p.push(b'(');
    int(&mut p, 1);
    p.push(b't'); // stride
    p.push(0x89); // NEWFALSE: requires_grad
    p.extend_from_slice(b"ccollections\nOrderedDict\n)R"); // backward hooks
    p.extend_from_slice(b"tR"); // the arguments, then _rebuild_tensor_v2(...)
    p.extend_from_slice(&[b'q', 0]); // BINPUT 0
    for i in 1..keys {
        text(&mut p, &format!("t{i}"));
        p.extend_from_slice(&[b'h', 0]); // BINGET 0
    }
    p.extend_from_slice(b"u."); // SETITEMS, STOP
    let storage = vec![0u8; numel as usize * 4];
    stored_zip(&[("a/data.pkl", &p), ("a/data/0", &storage)])
}

/// A zip archive of stored (uncompressed) entries.
fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let (mut zip, mut central) = (Vec::new(), Vec::new());
    let u16s = |v: &mut Vec<u8>, xs: &[u16]| xs.iter().for_each(|x| v.extend(x.to_le_bytes()));
    let u32s = |v: &mut Vec<u8>, xs: &[u32]| xs.iter().for_each(|x| v.extend(x.to_le_bytes()));
    for (name, data) in entries {
        let (crc, len, offset) = (
            kestrel_nn::import::zip_archive::crc32(data),
            data.len() as u32,
            zip.len() as u32,
        );
        u32s(&mut zip, &[0x0403_4b50]);
        u16s(&mut zip, &[20, 0, 0, 0, 0]); // version, flags, stored, time, date
        u32s(&mut zip, &[crc, len, len]);
        u16s(&mut zip, &[name.len() as u16, 0]);
        zip.extend_from_slice(name.as_bytes());
        zip.extend_from_slice(data);
        u32s(&mut central, &[0x0201_4b50]);
        u16s(&mut central, &[20, 20, 0, 0, 0, 0]);
        u32s(&mut central, &[crc, len, len]);
        u16s(&mut central, &[name.len() as u16, 0, 0, 0, 0]);
        u32s(&mut central, &[0, offset]);
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_offset, cd_size) = (zip.len() as u32, central.len() as u32);
    zip.extend_from_slice(&central);
    u32s(&mut zip, &[0x0605_4b50]);
    let n = entries.len() as u16;
    u16s(&mut zip, &[0, 0, n, n]);
    u32s(&mut zip, &[cd_size, cd_offset]);
    u16s(&mut zip, &[0]);
    zip
}

#[test]
fn pickled_tensors_sharing_a_storage_cannot_decode_past_the_files_size() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ok.png");
    common::solid_png(&img, 64, 64, [1, 2, 3]);
    // The format itself is read: two keys over one 64-float storage load (and do not fit).
    let small = dir.path().join("small.pth");
    std::fs::write(&small, shared_storage_pth(2, 64)).unwrap();
    let sd = kestrel_nn::import::read_state_dict(&small).unwrap();
    assert_eq!(sd.len(), 2);
    assert_eq!(sd.get("t1").unwrap().shape, [64]);
    // 20,000 keys over one 64 KiB storage: 1.3 GB of tensors from a 300 kB file.
    let big = dir.path().join("shared.pth");
    std::fs::write(&big, shared_storage_pth(20_000, 16_384)).unwrap();
    let o = predict_limited("resnet18", "1", path_str(&big), &img);
    assert_exit_2_naming(&o, &["shared.pth", "decoding limit"]);
}

/// A gzip stream of `bytes`.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut z, bytes).unwrap();
    z.finish().unwrap()
}

/// An IDX header of unsigned bytes with these dimensions.
fn idx_header(dims: &[u32]) -> Vec<u8> {
    let mut h = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        h.extend_from_slice(&d.to_be_bytes());
    }
    h
}

#[test]
fn a_gzipped_idx_file_cannot_declare_more_than_gzip_can_hold() {
    // 10^9 images of 28 × 28 (784 GB) declared by a gzip file of a few dozen bytes.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bomb");
    std::fs::create_dir(&data).unwrap();
    let mut images = idx_header(&[1_000_000_000, 28, 28]);
    images.extend_from_slice(&[0; 4096]);
    std::fs::write(data.join("train-images-idx3-ubyte.gz"), gzip(&images)).unwrap();
    let mut labels = idx_header(&[3]);
    labels.extend_from_slice(&[0, 1, 2]);
    std::fs::write(data.join("train-labels-idx1-ubyte"), labels).unwrap();
    let spec = format!("idx:{}", path_str(&data));
    let out = dir.path().join("split.json");
    let o = kestrel_limited(
        &[
            "split",
            "--data",
            &spec,
            "--val",
            "0.2",
            "--test",
            "0.2",
            "--out",
            path_str(&out),
        ],
        &[],
    );
    assert_exit_2_naming(
        &o,
        &["train-images-idx3-ubyte.gz", "1032:1", "784000000016"],
    );
}

#[test]
fn a_predictions_csv_cannot_ask_for_a_huge_confusion_matrix() {
    // 100,000 p_<class> columns: a 10^10-cell confusion matrix from a 1 MB header.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("scores.csv");
    let header: Vec<String> = std::iter::once("y_true".to_string())
        .chain((0..100_000).map(|c| format!("p_{c}")))
        .collect();
    let mut row = vec!["0".to_string(), "1".to_string()];
    row.extend(std::iter::repeat_n("0".to_string(), 99_999));
    std::fs::write(&csv, format!("{}\n{}\n", header.join(","), row.join(","))).unwrap();
    let o = kestrel_limited(&["metrics", "--input", path_str(&csv)], &[]);
    assert_exit_2_naming(&o, &["scores.csv", "4096"]);
}

/// The sections of a checkpoint file: metadata (as JSON), model and optimiser bytes.
fn checkpoint_sections(bytes: &[u8]) -> (serde_json::Value, Vec<u8>, Vec<u8>) {
    let mut rest = &bytes[b"KESTREL-CKPT1\n".len()..];
    let mut sections = Vec::new();
    for _ in 0..3 {
        let n = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        sections.push(rest[8..8 + n].to_vec());
        rest = &rest[8 + n..];
    }
    let model = sections.remove(1);
    let optim = sections.remove(1);
    (serde_json::from_slice(&sections[0]).unwrap(), model, optim)
}

/// A checkpoint file of these sections.
fn checkpoint_file(meta: &serde_json::Value, model: &[u8], optim: &[u8]) -> Vec<u8> {
    let mut out = b"KESTREL-CKPT1\n".to_vec();
    for s in [&serde_json::to_vec(meta).unwrap()[..], model, optim] {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s);
    }
    out
}

#[test]
fn checkpoint_metadata_is_checked_before_a_model_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let o = common::train_tiny(common::SMALL_SHAPES, &run, &["--epochs", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let best = run.join("checkpoints/best.ckpt");
    let (meta, model, optim) = checkpoint_sections(&std::fs::read(&best).unwrap());
    let tampered = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut m = meta.clone();
        edit(&mut m);
        std::fs::write(&best, checkpoint_file(&m, &model, &optim)).unwrap();
        kestrel_limited(&["eval", "--run", path_str(&run)], &[])
    };
    // 10^12 classes: refused by the class-count limit, before the network exists.
    let o = tampered(&|m| m["spec"]["classifier"]["num_classes"] = 1_000_000_000_000u64.into());
    assert_exit_2_naming(&o, &["best.ckpt", "`spec`", "100000"]);
    // Two names for three classes: refused, not mislabelled.
    let o = tampered(&|m| m["class_names"] = serde_json::json!(["circle", "square"]));
    assert_exit_2_naming(&o, &["best.ckpt", "`class_names`", "one name per class"]);
    // A segmentation model whose upsampler alone would take a gigabyte (255 classes, a
    // transposed ×32): a record padded to 8 MB holds its backbone, not the upsampler. (Exported:
    // `eval` would first refuse the data's other classes.)
    let model = [&model[..], &vec![0u8; 8 << 20][..]].concat();
    let tampered = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut m = meta.clone();
        edit(&mut m);
        std::fs::write(&best, checkpoint_file(&m, &model, &optim)).unwrap();
        kestrel_limited(&["eval", "--run", path_str(&run)], &[])
    };
    let o = tampered(&|m| {
        m["spec"] = serde_json::json!({"segmenter": {
            "name": {"variant": "fcn32s", "backbone": "mobilenet-v2"}, "width": 0.25, "num_classes": 255,
            "output_stride": 32, "upsampler": "transposed"}});
        m["class_names"] = (0..255).map(|c| c.to_string()).collect();
    });
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let plan = dir.path().join("x.plan");
    let args = [
        "export",
        "--run",
        path_str(&run),
        "--format",
        "plan",
        "--out",
        path_str(&plan),
    ];
    let o = kestrel_limited(&args, &[]);
    assert_exit_2_naming(&o, &["best.ckpt", "the model record has"]);
}
