//! End-to-end tests of the report writer on hand-made run folders (no training).

use super::*;

/// The eight bytes every PNG starts with (PNG specification, §5.2).
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// Width and height from a PNG's IHDR chunk, which must come first; `None` if not a PNG.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || bytes[..8] != PNG_SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((be(16), be(20)))
}

/// The value of attribute `name` in an HTML tag's text.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Checks that `html` loads nothing from elsewhere and that every image is an inline PNG whose
/// size matches its `width`/`height` attributes; returns the decoded images.
fn check_self_contained(html: &str) -> Vec<Vec<u8>> {
    let lower = html.to_ascii_lowercase();
    for banned in [
        "src=\"http",
        "href=\"http",
        "<script",
        "<link",
        "url(",
        "@import",
        "<iframe",
    ] {
        assert!(!lower.contains(banned), "report.html contains {banned}");
    }
    let mut images = Vec::new();
    for (i, _) in html.match_indices("<img") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        let src = attr(tag, "src").expect("img has src");
        let data = src
            .strip_prefix("data:image/png;base64,")
            .unwrap_or_else(|| {
                panic!(
                    "img src is not a PNG data URI: {}",
                    &src[..40.min(src.len())]
                )
            });
        let png = base64::decode(data).expect("valid base64");
        let size = png_size(&png).expect("the data URI decodes to a PNG");
        let w: u32 = attr(tag, "width").unwrap().parse().unwrap();
        let h: u32 = attr(tag, "height").unwrap().parse().unwrap();
        assert_eq!(size, (w, h));
        images.push(png);
    }
    images
}

fn epoch_line(e: usize, loss: &str, acc: f64) -> String {
    format!(
        r#"{{"epoch":{e},"train_loss":{{"classify":{loss},"segment":{}}},"train_accuracy":{acc},"val":{{"accuracy":{acc},"macro_f1":{}}},"lr":{{"backbone":{},"head":{}}},"task_weights":{{"classify":{},"segment":{}}},"seconds":1.25}}"#,
        1.0 / e as f64,
        acc - 0.1,
        1e-4 / e as f64,
        1e-3 / e as f64,
        0.3 + 0.1 * e as f64,
        0.7 - 0.1 * e as f64
    )
}

/// A run folder with a 3-epoch log (NaN loss in epoch 2), a summary and, optionally, gradient
/// norms with NaN, +inf and 0 among them.
fn run_folder(grad_norms: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path();
    let log = [
        epoch_line(1, "1.5", 0.5),
        epoch_line(2, "null", 0.625),
        epoch_line(3, "0.75", 0.75),
    ]
    .join("\n");
    std::fs::write(run.join(run_dir::METRICS), log + "\n").unwrap();
    let summary = Summary {
        task: "classify".into(),
        model: "mobilenet-v2".into(),
        best_epoch: 3,
        epochs_run: 3,
        val: [("accuracy".to_string(), 0.75)].into(),
        test_evaluated: false,
        train_seconds: 3.75,
        params: Default::default(),
        weights: None,
        replicas: None,
    };
    run_dir::write_json(&run.join(run_dir::SUMMARY), &summary).unwrap();
    if grad_norms {
        let mut lines = Vec::new();
        for step in 0..12 {
            let mut layers = Vec::new();
            for l in 0..5 {
                let norm = match (step, l) {
                    (4, 1) => "null".to_string(),
                    (7, 2) => "\"inf\"".to_string(),
                    (_, 4) => "0".to_string(),
                    _ => format!("{}", 10f64.powi(l - 2) * (1.0 + step as f64)),
                };
                layers.push(format!(
                    r#"{{"name":"features.{l}.conv.weight","norm":{norm}}}"#
                ));
            }
            lines.push(format!(
                r#"{{"epoch":{},"step":{step},"layers":[{}]}}"#,
                step / 4 + 1,
                layers.join(",")
            ));
        }
        std::fs::write(
            run.join(crate::driver::run_dir::GRAD_NORMS),
            lines.join("\n"),
        )
        .unwrap();
    }
    dir
}

fn classification_val() -> ValResults {
    // 3 classes, 6 images; rows sum to 1.
    ValResults::Classification {
        class_names: vec!["circle".into(), "square".into(), "<star>".into()],
        labels: vec![0, 1, 2, 0, 1, 2],
        probs: vec![
            0.7, 0.2, 0.1, //
            0.1, 0.8, 0.1, //
            0.2, 0.3, 0.5, //
            0.3, 0.4, 0.3, //
            0.2, 0.6, 0.2, //
            0.1, 0.1, 0.8,
        ],
    }
}

#[test]
fn classification_report_is_self_contained_and_every_plot_is_a_png_of_its_size() {
    let dir = run_folder(true);
    let run = dir.path();
    let steps: Vec<String> = (0..6)
        .map(|s| {
            format!(
                "{{\"epoch\":{},\"step\":{s},\"loss\":{},\"lr\":{{\"default\":0.001}}}}",
                s / 2 + 1,
                2.0 - 0.25 * s as f64
            )
        })
        .collect();
    std::fs::write(run.join(run_dir::STEPS), steps.join("\n") + "\n").unwrap();
    let mut inputs = ReportInputs::read(run).unwrap();
    assert_eq!(inputs.epochs.len(), 3);
    assert_eq!(inputs.steps.len(), 6);
    assert_eq!(inputs.grad_norms.len(), 12);
    inputs.val = Some(classification_val());
    let files = write(run, &inputs).unwrap();
    let names: Vec<String> = files
        .plots
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "loss.png",
            "val_metrics.png",
            "lr.png",
            "task_weights.png",
            "grad_norms.png",
            "confusion.png",
            "roc.png",
            "pr.png"
        ]
    );
    let html = std::fs::read_to_string(run.join(REPORT)).unwrap();
    let images = check_self_contained(&html);
    assert_eq!(images.len(), names.len());
    let expected_sizes = [
        kestrel_metrics::line_chart::LINE_CHART_SIZE,
        kestrel_metrics::line_chart::LINE_CHART_SIZE,
        kestrel_metrics::line_chart::LINE_CHART_SIZE,
        kestrel_metrics::line_chart::LINE_CHART_SIZE,
        (1200, 56 + 240 + 64),
        kestrel_metrics::plot::confusion_size(3),
        kestrel_metrics::plot::CURVE_SIZE,
        kestrel_metrics::plot::CURVE_SIZE,
    ];
    for ((path, inline), size) in files.plots.iter().zip(&images).zip(expected_sizes) {
        let on_disk = std::fs::read(path).unwrap();
        assert_eq!(
            &on_disk,
            inline,
            "{} differs from its inline copy",
            path.display()
        );
        assert_eq!(png_size(&on_disk), Some(size), "{}", path.display());
    }
    // Title from summary.json, the final epoch's numbers, escaped class-free text.
    assert!(html.contains("mobilenet-v2"));
    assert!(html.contains("best epoch <b>3</b>"));
    assert!(html.contains("Final epoch (3 of 3)"));
    assert!(html.contains("Training loss of every optimiser step"));
    assert!(html.contains("at every optimiser step: the warm-up"));
    assert!(html.contains("<td>task weight (segment)</td><td class=\"n\">0.4000</td>"));
    assert!(html.contains("<td>learning rate (head)</td><td class=\"n\">3.333e-4</td>"));
    assert!(files.notes.is_empty(), "{:?}", files.notes);
    // Rewriting replaces the files and leaves no temporary file behind.
    write(run, &inputs).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(run.join(plots::PLOTS))
        .unwrap()
        .chain(std::fs::read_dir(run).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_run_without_gradient_norms_or_validation_results_still_gets_a_report() {
    let dir = run_folder(false);
    let run = dir.path();
    let inputs = ReportInputs::read(run).unwrap();
    assert!(inputs.grad_norms.is_empty());
    let files = write(run, &inputs).unwrap();
    assert_eq!(files.plots.len(), 4);
    assert!(!run.join("plots/grad_norms.png").exists());
    assert_eq!(files.notes.len(), 2, "{:?}", files.notes);
    let html = std::fs::read_to_string(run.join(REPORT)).unwrap();
    assert_eq!(check_self_contained(&html).len(), 4);
    assert!(html.contains("grad_norms.jsonl absent or empty"));
}

#[test]
fn a_segmentation_report_has_the_pixel_confusion_and_iou_bars() {
    let dir = run_folder(false);
    let run = dir.path();
    let mut inputs = ReportInputs::read(run).unwrap();
    inputs.summary = None;
    inputs.val = Some(ValResults::Segmentation {
        class_names: vec!["background".into(), "circle".into(), "square".into()],
        confusion: vec![vec![9000, 40, 60], vec![30, 700, 0], vec![0, 0, 0]],
        iou_per_class: vec![Some(0.9869), Some(0.9), None],
    });
    let files = write(run, &inputs).unwrap();
    let html = std::fs::read_to_string(run.join(REPORT)).unwrap();
    assert_eq!(check_self_contained(&html).len(), files.plots.len());
    assert_eq!(
        png_size(&std::fs::read(run.join("plots/iou.png")).unwrap()),
        Some(kestrel_metrics::bar_chart::bar_chart_size(3))
    );
    assert_eq!(
        png_size(&std::fs::read(run.join("plots/confusion.png")).unwrap()),
        Some(kestrel_metrics::plot::confusion_size(3))
    );
    assert!(!run.join("plots/roc.png").exists());
    assert!(html.contains("No summary.json"));
}

#[test]
fn invalid_probabilities_skip_the_validation_plots_with_a_note() {
    let dir = run_folder(false);
    let run = dir.path();
    let mut inputs = ReportInputs::read(run).unwrap();
    inputs.val = Some(ValResults::Classification {
        class_names: vec!["a".into(), "b".into()],
        labels: vec![0, 1],
        probs: vec![f64::NAN, 0.5, 0.5, 0.5],
    });
    let files = write(run, &inputs).unwrap();
    assert!(files
        .notes
        .iter()
        .any(|n| n.starts_with("Validation plots not drawn")));
    assert!(!run.join("plots/confusion.png").exists());
}

#[test]
fn a_folder_without_a_metrics_log_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let e = ReportInputs::read(dir.path()).unwrap_err();
    assert!(
        matches!(e, TrainError::BadInput(ref m) if m.contains("metrics.jsonl")),
        "{e}"
    );
}
