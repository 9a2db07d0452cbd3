//! The smoke run of every fuzz target: each seed in `seeds/<target>/`, then deterministic
//! mutations of it (bit flips, truncations, insertions, overwrites, repeats), with a fixed-seed
//! generator so that a failure reproduces. A panic, an abort or a huge allocation fails the test;
//! the message names the target, the seed and the mutation's number.
//!
//! `cargo test -- --ignored write_seeds` regenerates the seeds from the repository's fixtures and
//! a few tiny files made here.

use kestrel_fuzz::TARGETS;
use std::path::{Path, PathBuf};

/// Mutations of each seed.
const MUTATIONS: u64 = 2000;

/// xorshift64*: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One to three edits of `seed`.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(3) {
        let pos = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = pos.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(pos),
            2 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(pos..pos, bytes);
            }
            3 if !v.is_empty() => {
                // Values parsers treat specially: zero, the extremes, ASCII digits and quotes.
                const SPECIAL: [u8; 8] = [0, 0xff, 0x7f, 0x80, b'9', b'"', b',', b'\n'];
                let i = pos.min(v.len() - 1);
                v[i] = SPECIAL[rng.below(SPECIAL.len())];
            }
            4 if !v.is_empty() => {
                // A little-endian or big-endian length field gone large.
                let i = pos.min(v.len() - 1);
                let end = (i + 4).min(v.len());
                v[i..end].fill(0xff);
            }
            _ => {
                // Repeat a chunk.
                let start = rng.below(v.len() + 1);
                let end = (start + 1 + rng.below(64)).min(v.len());
                let chunk = v[start..end].to_vec();
                v.splice(pos..pos, chunk);
            }
        }
    }
    v
}

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

/// The seeds of `target`, sorted by name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = seeds_dir().join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_target_survives_its_seeds_and_their_mutations() {
    let mut total = 0usize;
    for (name, run) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "no seeds for {name}");
        for (i, (seed_name, seed)) in seeds.iter().enumerate() {
            total += seed.len();
            let fail = |m: Option<u64>| format!("target {name}, seed {seed_name}, mutation {m:?}");
            let r = std::panic::catch_unwind(|| run(seed));
            assert!(r.is_ok(), "{}", fail(None));
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1) ^ name.len() as u64);
            for m in 0..MUTATIONS {
                let input = mutate(seed, &mut rng);
                let r = std::panic::catch_unwind(|| run(&input));
                assert!(r.is_ok(), "{}", fail(Some(m)));
            }
        }
    }
    assert!(
        total < 100_000,
        "seeds total {total} bytes: keep them under 100 KB"
    );
}

/// Writes `bytes` as seed `name` of `target`.
fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = seeds_dir().join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn weights_seeds() {
    let fixtures = repo().join("crates/kestrel-nn/tests/fixtures/import");
    let read = |n: &str| std::fs::read(fixtures.join(n)).unwrap();
    put("torch_zip", "dtypes.pth", &read("dtypes.pth"));
    put("torch_zip", "evil_eval_zip.pth", &read("evil_eval_zip.pth"));
    put(
        "torch_legacy",
        "dtypes_legacy.pth",
        &read("dtypes_legacy.pth"),
    );
    put(
        "safetensors",
        "dtypes.safetensors",
        &read("dtypes.safetensors"),
    );
    put("pickle", "evil_os_system.pkl", &read("evil_os_system.pth"));
    let zip = read("dtypes.pth");
    let archive = kestrel_fuzz::import::zip_archive::ZipArchive::new(&zip).unwrap();
    let pkl = archive
        .names()
        .iter()
        .find(|n| n.ends_with("data.pkl"))
        .unwrap()
        .clone();
    put("pickle", "dtypes.pkl", archive.get(&pkl).unwrap().unwrap());
}

fn plan_seeds() {
    use kestrel_runtime::geometry::ConvGeometry;
    use kestrel_runtime::{Activation, ConvParams, PlanBuilder, Shape};
    let w = |n: usize| -> Vec<f32> { (0..n).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect() };
    let mut b = PlanBuilder::new(Shape::new(8, 8, 3));
    let x = b.input();
    let (w1, b1) = (w(4 * 3 * 9), w(4));
    let c1 = b
        .conv(
            x,
            &ConvParams::new(&w1, Some(&b1), 4, 3)
                .padding(1)
                .act(Activation::Relu),
        )
        .unwrap();
    let wd = w(4 * 9);
    let d = b
        .conv(c1, &ConvParams::new(&wd, None, 4, 3).padding(1).groups(4))
        .unwrap();
    let wp = w(4 * 4);
    let p = b.conv(d, &ConvParams::new(&wp, None, 4, 1)).unwrap();
    let r = b.add_residual(p, c1, Activation::Relu).unwrap();
    let m = b.max_pool(r, ConvGeometry::square(2, 2, 0, 1)).unwrap();
    let g = b.global_pool(m).unwrap();
    let (wl, bl) = (w(2 * 4), w(2));
    let out = b.linear(g, &wl, Some(&bl), 2, Activation::None).unwrap();
    let bytes = b.build(out).unwrap().to_bytes();
    // The target appends the checksum itself.
    put("plan", "tiny.plan", &bytes[..bytes.len() - 8]);
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn idx_seeds() {
    let images = idx_bytes(&[3, 2, 3], &(0..18).collect::<Vec<u8>>());
    let labels = idx_bytes(&[3], &[2, 0, 1]);
    put("idx", "images-idx3-ubyte", &images);
    put("idx", "labels-idx1-ubyte", &labels);
    put("idx", "images-idx3-ubyte.gz", &kestrel_fuzz::gzip(&images));
    put("idx", "labels-idx1-ubyte.gz", &kestrel_fuzz::gzip(&labels));
}

fn csv_seeds() {
    put(
        "metrics_csv",
        "binary.csv",
        b"id,y_true,score\na,0,0.25\nb, 1 ,\"0.75\"\nc,1.0,1e-3\nd,0,0.6\n",
    );
    put(
        "metrics_csv",
        "multiclass.csv",
        b"y_true,p_cat,p_dog,p_owl\ncat,0.7,0.2,0.1\ndog,0.2,0.8,0\nowl,0.3,0.3,0.4\ncat,0.1,0.1,0.8\n",
    );
    put(
        "metrics_csv",
        "numeric.csv",
        b"y_true,p_0,p_1\n1.0,0.4,0.6\n0,0.9,0.1\n",
    );
}

/// The legacy checkpoints of kestrel-train's tests with their model and optimiser sections
/// emptied: the metadata is what the target checks.
fn checkpoint_seeds() {
    let fixtures = repo().join("crates/kestrel-train/tests/fixtures");
    for name in ["classify", "segment", "multitask"] {
        let bytes = std::fs::read(fixtures.join(format!("legacy-{name}.ckpt"))).unwrap();
        let magic = b"KESTREL-CKPT1\n";
        let len = u64::from_le_bytes(bytes[magic.len()..magic.len() + 8].try_into().unwrap());
        let meta = &bytes[magic.len() + 8..magic.len() + 8 + len as usize];
        let mut out = magic.to_vec();
        for section in [meta, &[], &[]] {
            out.extend_from_slice(&(section.len() as u64).to_le_bytes());
            out.extend_from_slice(section);
        }
        put("checkpoint", &format!("legacy-{name}.ckpt"), &out);
    }
}

fn image_seeds() {
    use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};
    let rgb = RgbImage::from_fn(5, 4, |x, y| Rgb([(x * 40) as u8, (y * 60) as u8, 128]));
    let gray = GrayImage::from_fn(4, 3, |x, y| Luma([(x + y) as u8]));
    for (name, format) in [
        ("rgb.png", ImageFormat::Png),
        ("rgb.jpg", ImageFormat::Jpeg),
        ("rgb.bmp", ImageFormat::Bmp),
    ] {
        let mut out = std::io::Cursor::new(Vec::new());
        rgb.write_to(&mut out, format).unwrap();
        put("image", name, out.get_ref());
    }
    let mut out = std::io::Cursor::new(Vec::new());
    gray.write_to(&mut out, ImageFormat::Png).unwrap();
    put("image", "mask.png", out.get_ref());
}

#[test]
#[ignore = "writes the seeds; run by hand when a format changes"]
fn write_seeds() {
    weights_seeds();
    plan_seeds();
    idx_seeds();
    csv_seeds();
    checkpoint_seeds();
    image_seeds();
}
