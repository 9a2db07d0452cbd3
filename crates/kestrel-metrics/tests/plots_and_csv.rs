//! The CLI layer end to end: CSV in, report and PNG plots out.

use kestrel_metrics::{csv_input, plot, Report};
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Decodes a PNG and returns (width, height, share of non-white pixels, distinct colours > 2).
fn inspect(path: &Path) -> (u32, u32, f64, bool) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = &buf[..info.buffer_size()];
    let n = (info.width * info.height) as usize;
    let ink = px.chunks(3).filter(|p| p != &[255, 255, 255]).count();
    let mut colours: Vec<[u8; 3]> = px.chunks(3).map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort_unstable();
    colours.dedup();
    (
        info.width,
        info.height,
        ink as f64 / n as f64,
        colours.len() > 2,
    )
}

fn check_plots(dir: &Path) {
    for name in ["roc.png", "pr.png", "confusion.png"] {
        let (w, h, ink, colourful) = inspect(&dir.join(name));
        assert!(w >= 400 && h >= 400, "{name}: {w}x{h}");
        assert!(ink > 0.01 && ink < 0.9, "{name}: {ink} of the pixels drawn");
        assert!(colourful, "{name}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn binary_csv_to_report_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("y_true,score\n");
    for i in 0..400 {
        let y = usize::from(i % 20 == 0);
        let s = ((i * 37) % 100) as f64 / 100.0 * 0.7 + 0.3 * y as f64;
        text.push_str(&format!("{y},{s}\n"));
    }
    let csv = write(dir.path(), "p.csv", &text);
    let p = csv_input::load(&csv).unwrap();
    let r = Report::from_predictions(&p, 0.5).unwrap();
    assert_eq!(r.n, 400);
    assert!(r.warnings[0].contains("5.00 % of samples are positive"));
    assert!(r.to_text().starts_with("400 samples, binary"));
    let out = dir.path().join("plots/nested");
    plot::write_plots(&p, &r, &out).unwrap();
    check_plots(&out);
    // Rewriting replaces the files.
    plot::write_plots(&p, &r, &out).unwrap();
    check_plots(&out);
}

#[test]
fn multiclass_csv_to_report_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("y_true,p_cat,p_dog,p_eel\n");
    let names = ["cat", "dog", "eel"];
    for i in 0..300usize {
        let y = i % 3;
        let mut p = [0.2, 0.2, 0.2];
        p[(i * 7) % 3] += 0.25;
        p[y] += 0.15;
        let s: f64 = p.iter().sum();
        text.push_str(&format!(
            "{},{},{},{}\n",
            names[y],
            p[0] / s,
            p[1] / s,
            p[2] / s
        ));
    }
    let csv = write(dir.path(), "m.csv", &text);
    let p = csv_input::load(&csv).unwrap();
    let r = Report::from_predictions(&p, 0.5).unwrap();
    assert_eq!(r.classes, ["cat", "dog", "eel"]);
    assert!(r.roc_auc_ovr_macro.is_some());
    plot::write_plots(&p, &r, dir.path()).unwrap();
    check_plots(dir.path());
}

#[test]
fn one_class_still_plots() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "one.csv", "y_true,score\n1,0.2\n1,0.9\n1,0.4\n");
    let p = csv_input::load(&csv).unwrap();
    let r = Report::from_predictions(&p, 0.5).unwrap();
    assert!(r.roc_auc.is_none());
    plot::write_plots(&p, &r, dir.path()).unwrap();
    for name in ["roc.png", "pr.png", "confusion.png"] {
        assert!(inspect(&dir.path().join(name)).2 > 0.01);
    }
}

#[test]
fn unwritable_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "f", "x");
    let p = kestrel_metrics::Predictions::binary(&[0u8, 1], vec![0.1, 0.9]).unwrap();
    let r = Report::from_predictions(&p, 0.5).unwrap();
    let e = plot::write_plots(&p, &r, &file.join("sub")).unwrap_err();
    assert!(e.to_string().contains("/f/sub"), "{e}");
}
