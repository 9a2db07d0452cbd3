//! `kestrel info`: a network's layers, parameters and multiply-adds at one input size, computed
//! from its architecture description without building or running it.

use crate::exit::{print_json, CliError};
use clap::Args;
use kestrel_nn::info::grouped;
use kestrel_nn::info::named::{self, NamedError};
use kestrel_nn::{InfoError, LayerKind, ModelInfo};

/// Flags of `kestrel info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Model name: mobilenet-v1, mobilenet-v2, resnet18, resnet34, resnet50, or a segmentation
    /// model fcn32s-, fcn16s- or fcn8s- followed by mobilenet-v2, resnet18, resnet34 or resnet50.
    model: String,
    /// Width multiplier α (MobileNets only).
    #[arg(long)]
    width: Option<f64>,
    /// Input size in pixels (square).
    #[arg(long, default_value_t = 224)]
    resolution: usize,
    /// Number of classes [default: 1000 (ImageNet); 21 (PASCAL VOC, background included) for
    /// the FCN models].
    #[arg(long)]
    classes: Option<usize>,
    /// Upsampling layers of an FCN model: nearest, bilinear, bicubic, transposed,
    /// pixelshuffle, carafe, meta.
    #[arg(long, default_value = "bilinear")]
    upsampler: String,
    /// Output stride of the backbone: 32, or 16 / 8 with the later strides turned into
    /// dilation (DeepLab's dilated backbones; MobileNetV2 and ResNets).
    #[arg(long, default_value_t = 32)]
    output_stride: usize,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs `kestrel info`: the table on stdout, or one JSON document with `--json`.
pub fn run(a: InfoArgs) -> Result<(), CliError> {
    let info = describe(&a)?;
    if a.json {
        print_json(&info)
    } else {
        print!("{}", to_text(&info));
        Ok(())
    }
}

/// The description `a` asks for; bad input names the flag and what was expected.
fn describe(a: &InfoArgs) -> Result<ModelInfo, CliError> {
    let result = named::describe_named(
        &a.model,
        a.width,
        a.resolution,
        a.classes,
        &a.upsampler,
        a.output_stride,
    );
    result.map_err(|e| match e {
        e @ (NamedError::Name(_) | NamedError::Setting { .. }) => crate::model_arg::bad_input(e),
        NamedError::Info(InfoError::BadValue {
            field,
            expected,
            got,
        }) => {
            let field = if field == "num-classes" {
                "classes".into()
            } else {
                field
            };
            CliError::BadInput(format!(
                "bad value for `--{field}`: expected {expected}, got {got}"
            ))
        }
        NamedError::Info(e @ InfoError::TooSmall { .. }) => {
            CliError::BadInput(format!("`--resolution`: {e}"))
        }
        NamedError::Info(e @ InfoError::Overflow(_)) => CliError::BadInput(format!(
            "{e} (--width {}, --resolution {}, --classes {})",
            a.width.unwrap_or(1.0),
            a.resolution,
            a.classes.map_or("default".into(), |c| c.to_string())
        )),
        NamedError::Info(e @ InfoError::Inconsistent { .. }) => CliError::Runtime(e.to_string()),
    })
}

/// A multiply-add count for reading: `300.8 M`, `4.09 G`, `12.3 K`, `80`.
fn human(n: u64) -> String {
    let x = n as f64;
    if n >= 1_000_000_000 {
        format!("{:.2} G", x / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.1} M", x / 1e6)
    } else if n >= 1_000 {
        format!("{:.1} K", x / 1e3)
    } else {
        n.to_string()
    }
}

fn shape(s: [usize; 3]) -> String {
    format!("{}×{}×{}", s[0], s[1], s[2])
}

fn kind(k: LayerKind) -> &'static str {
    match k {
        LayerKind::Conv => "conv",
        LayerKind::Fc => "fc",
        LayerKind::MaxPool => "maxpool",
        LayerKind::AvgPool => "avgpool",
        LayerKind::Upsample => "upsample",
    }
}

/// The aligned table: one row per layer, then the totals.
fn to_text(info: &ModelInfo) -> String {
    let header = [
        "layer", "kind", "in", "out", "k", "s", "d", "groups", "params", "MACs", "RF",
    ];
    // Text columns align left, numbers right.
    let numeric = [
        false, false, true, true, true, true, true, true, true, true, true,
    ];
    let rows: Vec<[String; 11]> = info
        .layers
        .iter()
        .map(|l| {
            [
                l.name.clone(),
                kind(l.kind).to_string(),
                shape(l.input),
                shape(l.out),
                l.kernel.to_string(),
                l.stride.to_string(),
                l.dilation.to_string(),
                l.groups.to_string(),
                grouped(l.params),
                human(l.macs),
                l.receptive_field.to_string(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if i > 0 {
                out.push_str("  ");
            }
            if numeric[i] {
                out.push_str(&pad);
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&pad);
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut text = format!("{}  input {}\n", info.model, shape(info.input));
    text += &line(&header.map(String::from));
    for row in &rows {
        text += &line(row);
    }
    text += &format!(
        "params {}  MACs {}\n",
        grouped(info.params),
        human(info.macs)
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: InfoArgs,
    }

    fn args(argv: &[&str]) -> InfoArgs {
        Cli::try_parse_from(std::iter::once("info").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn defaults_are_224_px_1000_classes_width_1() {
        let info = describe(&args(&["mobilenet-v1"])).unwrap();
        assert_eq!(info.input, [3, 224, 224]);
        // Howard et al. 2017, Table 6: 569 M multiply-adds, 4.2 M parameters.
        assert_eq!(info.macs, 568_740_352);
        assert_eq!(info.params, 4_231_976);
        assert_eq!(info.layers.last().unwrap().out, [1000, 1, 1]);
    }

    #[test]
    fn mobilenet_v1_grid_within_a_million_of_the_paper() {
        // Paper Table 6 (α at 224) and Table 7 (ρ at α = 1), million multiply-adds.
        for (width, res, paper) in [
            ("1", "224", 569.0),
            ("0.75", "224", 325.0),
            ("0.5", "224", 149.0),
            ("0.25", "224", 41.0),
            ("1", "192", 418.0),
            ("1", "160", 290.0),
            ("1", "128", 186.0),
        ] {
            let info = describe(&args(&[
                "mobilenet-v1",
                "--width",
                width,
                "--resolution",
                res,
            ]))
            .unwrap();
            assert!(
                (info.macs as f64 / 1e6 - paper).abs() <= 1.0,
                "α={width} ρ={res}: {}",
                info.macs
            );
        }
    }

    #[test]
    fn totals_of_the_other_models() {
        for (model, params, macs) in [
            ("mobilenet-v2", 3_504_872, 300_774_272),
            ("resnet18", 11_689_512, 1_814_073_344),
            ("resnet34", 21_797_672, 3_663_761_408),
            ("resnet50", 25_557_032, 4_089_184_256),
        ] {
            let info = describe(&args(&[model])).unwrap();
            assert_eq!((info.params, info.macs), (params, macs), "{model}");
        }
        let info = describe(&args(&[
            "resnet18",
            "--classes",
            "10",
            "--resolution",
            "64",
        ]))
        .unwrap();
        assert_eq!(info.params, 11_689_512 - 513 * 990);
        assert_eq!(info.input, [3, 64, 64]);
    }

    #[test]
    fn text_table_is_aligned_and_ends_with_totals() {
        let text = to_text(&describe(&args(&["mobilenet-v2"])).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "mobilenet-v2  input 3×224×224");
        assert_eq!(*lines.last().unwrap(), "params 3,504,872  MACs 300.8 M");
        // Every layer row ends its RF column where the header's does.
        let end = lines[1].chars().count();
        for row in &lines[2..lines.len() - 1] {
            assert_eq!(row.chars().count(), end, "{row}");
        }
        assert!(lines[2].starts_with("stem "), "{}", lines[2]);
        let text = to_text(&describe(&args(&["resnet50"])).unwrap());
        assert!(text.ends_with("params 25,557,032  MACs 4.09 G\n"), "{text}");
    }

    #[test]
    fn output_stride_dilates_and_bad_strides_name_the_flag() {
        // torchvision's deeplabv3_resnet50 backbone (replace_stride_with_dilation=[False, True,
        // True]): layer4 keeps 28×28 at 224 px with dilation 4 in its later blocks.
        let info = describe(&args(&["resnet50", "--output-stride", "8"])).unwrap();
        let row = info
            .layers
            .iter()
            .find(|l| l.name == "layer4.2.conv2")
            .unwrap();
        assert_eq!((row.out, row.dilation, row.stride), ([512, 28, 28], 4, 1));
        // The parameters do not change; the multiply-adds do.
        let plain = describe(&args(&["resnet50"])).unwrap();
        assert_eq!(info.params, plain.params);
        assert!(info.macs > 3 * plain.macs);
        for bad in [
            ["resnet18", "--output-stride", "4"],
            ["mobilenet-v1", "--output-stride", "16"],
        ] {
            let e = describe(&args(&bad)).unwrap_err().to_string();
            assert!(e.contains("--output-stride") && e.contains("32"), "{e}");
        }
    }

    #[test]
    fn json_is_the_spec_document() {
        let info = describe(&args(&["resnet18", "--resolution", "64"])).unwrap();
        let text = serde_json::to_string(&info).unwrap();
        // Field order as the spec lists it.
        assert!(
            text.starts_with(r#"{"model":"resnet18","params":11689512,"macs":"#),
            "{text}"
        );
        assert!(text.contains(r#""input":[3,64,64],"layers":[{"name":"conv1","kind":"conv","in":[3,64,64],"out":[64,32,32],"kernel":7,"stride":2,"dilation":1,"groups":1,"params":9536,"macs":"#), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["layers"][1]["kind"], "maxpool");
        assert_eq!(v["layers"][1]["receptive_field"], 11);
    }

    #[test]
    fn bad_input_is_exit_2_naming_the_problem() {
        let bad = |argv: &[&str]| match describe(&args(argv)) {
            Err(e @ CliError::BadInput(_)) => {
                assert_eq!(e.code(), 2);
                e.to_string()
            }
            other => panic!("{argv:?}: {other:?}"),
        };
        let e = bad(&["vgg16"]);
        assert!(e.contains("vgg16"), "{e}");
        for name in kestrel_nn::models::zoo::ARCH_NAMES {
            assert!(e.contains(name), "{e}");
        }
        assert!(bad(&["resnet50", "--width", "0.5"]).contains("--width"));
        assert!(bad(&["mobilenet-v1", "--width", "0"]).contains("--width"));
        assert!(bad(&["mobilenet-v1", "--width", "NaN"]).contains("--width"));
        assert!(bad(&["mobilenet-v2", "--classes", "0"]).contains("--classes"));
        assert!(bad(&["resnet18", "--resolution", "0"]).contains("--resolution"));
        // An explicit width of 1 is fine for a ResNet.
        assert!(describe(&args(&["resnet34", "--width", "1"])).is_ok());
    }

    #[test]
    fn segmentation_models_by_name() {
        for (head, n_up) in [("fcn32s", 1), ("fcn16s", 2), ("fcn8s", 3)] {
            let info = describe(&args(&[&format!("{head}-mobilenet-v2")])).unwrap();
            assert_eq!(info.model, format!("{head}-mobilenet-v2"));
            // 21 classes (VOC) by default, at the input size after the final crop.
            let last = info.layers.last().unwrap();
            assert_eq!(last.out, [21, 224, 224]);
            let ups = info
                .layers
                .iter()
                .filter(|l| l.kind == LayerKind::Upsample)
                .count();
            assert_eq!(ups, n_up, "{head}");
        }
        // Dilated ResNet-50, transposed upsampling, 5 classes: the head is upsample rows only.
        let info = describe(&args(&[
            "fcn8s-resnet50",
            "--output-stride",
            "8",
            "--upsampler",
            "transposed",
            "--classes",
            "5",
            "--resolution",
            "96",
        ]))
        .unwrap();
        let head: Vec<&str> = info
            .layers
            .iter()
            .filter(|l| !l.name.starts_with("backbone."))
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(head, ["score32", "score16", "score8", "up_final"]);
        let text = to_text(&info);
        assert!(text.contains("upsample"), "{text}");
        let bad = |argv: &[&str]| describe(&args(argv)).unwrap_err().to_string();
        assert!(bad(&["fcn8s-mobilenet-v2", "--upsampler", "lanczos"]).contains("--upsampler"));
        assert!(bad(&["fcn8s-resnet18", "--width", "0.5"]).contains("--width"));
        assert!(bad(&["fcn8s-vgg16"]).contains("fcn8s-vgg16"));
        assert!(bad(&["fcn8s-mobilenet-v2", "--classes", "0"]).contains("--classes"));
        assert!(bad(&["fcn8s-mobilenet-v2", "--output-stride", "4"]).contains("--output-stride"));
    }
}
