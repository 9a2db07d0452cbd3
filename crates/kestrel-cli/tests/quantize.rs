//! `kestrel quantize` and the int8 engine from the command line: a quantised run agrees with its
//! fp32 model, and a plan with a corrupt scale or zero point is refused (exit 2), never run.

mod common;

use common::*;
use std::path::Path;

const DATA: &str = "shapes:n=240,size=32,classes=3,seed=4";

/// FNV-1a 64, the int8 plan file's checksum (written here from its definition).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The int8 plan file at `src` with its quantisation table's JSON edited by `edit`, written to
/// `dst` with the lengths and checksum made right again (so only the table is wrong).
fn with_table(src: &Path, dst: &Path, edit: impl Fn(&str) -> String) {
    let b = std::fs::read(src).unwrap();
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap()) as usize;
    let plen = u64_at(12);
    let t0 = 20 + plen + 8;
    let tlen = u64_at(20 + plen);
    let table = std::str::from_utf8(&b[t0..t0 + tlen]).unwrap();
    let new = edit(table);
    assert_ne!(new, table, "the edit changed nothing");
    let mut out = b[..20 + plen].to_vec();
    out.extend_from_slice(&(new.len() as u64).to_le_bytes());
    out.extend_from_slice(new.as_bytes());
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    std::fs::write(dst, out).unwrap();
}

#[test]
fn a_quantised_run_agrees_with_its_fp32_model_and_corrupt_plans_are_refused() {
    let (dir, run, _) = fresh_tiny_run(DATA, "6");
    let runs = run.to_str().unwrap();
    let q = run_json(&["quantize", "--run", runs, "--calib-n", "64", "--json"]);
    let plan = run.join("int8.plan");
    assert_eq!(q["out"], plan.to_str().unwrap());
    assert_eq!(q["calibration_images"], 64);
    let values = q["values"].as_array().unwrap();
    assert_eq!(values[0]["op"], "input");
    assert_eq!(values.last().unwrap()["op"], "linear");
    // The logits keep their signal (a broken requantisation gives ≤ 0 dB). This width-0.25
    // network's 8-channel bottlenecks lose about 0.6 dB a layer: 8 dB at the logits.
    let out_sqnr = values.last().unwrap()["sqnr_db"].as_f64().unwrap();
    assert!(out_sqnr > 5.0, "output SQNR {out_sqnr} dB");
    let first_conv = values[1]["sqnr_db"].as_f64().unwrap();
    assert!(first_conv > 30.0, "stem SQNR {first_conv} dB");

    let e = run_json(&["eval", "--run", runs, "--engine", "int8", "--json"]);
    let (fp, i8) = (
        e["fp32"]["accuracy"].as_f64().unwrap(),
        e["int8"]["accuracy"].as_f64().unwrap(),
    );
    // The fp32 figures are plain `kestrel eval`'s.
    let plain = run_json(&["eval", "--run", runs, "--json"]);
    assert_eq!(plain["accuracy"].as_f64().unwrap(), fp);
    // A six-epoch width-0.25 model is unsure of many images (near ties), so int8 flips some:
    // measured 0.81 agreement. A wrong engine agrees by chance only (about 1/3).
    let agree = e["top1_agreement"].as_f64().unwrap();
    assert!(agree >= 0.7, "top-1 agreement {agree}");
    assert!(fp - i8 <= 0.1, "fp32 {fp} int8 {i8}");
    assert_eq!(
        e["images"],
        plain["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .sum::<u64>())
            .sum::<u64>()
    );

    // predict on the int8 engine: same images, mostly the same top class.
    let img = dir.path().join("img.png");
    solid_png(&img, 32, 32, [200, 40, 40]);
    let p8 = run_json(&[
        "predict",
        "--run",
        runs,
        "--engine",
        "int8",
        "--json",
        img.to_str().unwrap(),
    ]);
    let p32 = run_json(&["predict", "--run", runs, "--json", img.to_str().unwrap()]);
    assert_eq!(p8[0]["top"][0]["class"], p32[0]["top"][0]["class"]);

    // Corrupt tables are refused naming the file and what is wrong.
    let bad = dir.path().join("bad.plan");
    let bads = bad.to_str().unwrap();
    with_table(&plan, &bad, |t| {
        let at = t.find("\"scale\":").unwrap() + 8;
        let end = at + t[at..].find(',').unwrap();
        format!("{}-0.5{}", &t[..at], &t[end..])
    });
    let o = kestrel(&["eval", "--run", runs, "--plan", bads]);
    assert_exit_2_naming(&o, &[bads, "value 0 has scale -0.5"]);
    with_table(&plan, &bad, |t| {
        let at = t.find("\"zero\":").unwrap() + 7;
        let end = at + t[at..].find('}').unwrap();
        format!("{}300{}", &t[..at], &t[end..])
    });
    let o = kestrel(&[
        "predict",
        "--run",
        runs,
        "--plan",
        bads,
        img.to_str().unwrap(),
    ]);
    assert_exit_2_naming(&o, &[bads, "300"]);
    with_table(&plan, &bad, |t| t.replacen("[", "[[", 1));
    assert_exit_2_naming(&kestrel(&["eval", "--run", runs, "--plan", bads]), &[bads]);
    // A flipped byte in the weights fails the checksum; a truncated file says so.
    let mut b = std::fs::read(&plan).unwrap();
    b[200] ^= 4;
    std::fs::write(&bad, &b).unwrap();
    assert_exit_2_naming(
        &kestrel(&["eval", "--run", runs, "--plan", bads]),
        &["checksum"],
    );
    std::fs::write(&bad, &b[..b.len() / 2]).unwrap();
    assert_exit_2_naming(
        &kestrel(&["eval", "--run", runs, "--plan", bads]),
        &["truncated"],
    );
    // An fp32 plan is not an int8 plan.
    let fp32 = dir.path().join("m.plan");
    let fp32s = fp32.to_str().unwrap();
    assert_ok(
        &kestrel(&["export", "--run", runs, "--format", "plan", "--out", fp32s]),
        "export",
    );
    assert_exit_2_naming(
        &kestrel(&["eval", "--run", runs, "--plan", fp32s]),
        &["KESTINT8"],
    );
}

#[test]
fn int8_without_a_plan_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("no-run");
    std::fs::create_dir_all(&run).unwrap();
    let o = kestrel(&["eval", "--run", run.to_str().unwrap(), "--engine", "int8"]);
    assert_exit_2_naming(&o, &["int8.plan", "kestrel quantize"]);
    let o = kestrel(&[
        "quantize",
        "--arch",
        "resnet18",
        "--weights",
        "x.pth",
        "--out",
        "y",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = kestrel(&["quantize", "--run", run.to_str().unwrap(), "--calib-n", "0"]);
    assert_exit_2_naming(&o, &["--calib-n"]);
}
