//! Scores a predictions CSV as `kestrel metrics` will:
//! `cargo run -p kestrel-metrics --example report -- FILE.csv [--json] [--plots DIR] [--threshold T]`.

use kestrel_metrics::{csv_input, plot, Report};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut input = None;
    let mut plots = None;
    let mut json = false;
    let mut threshold = 0.5;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = true,
            "--plots" => plots = args.next().map(PathBuf::from),
            "--threshold" => match args.next().and_then(|t| t.parse().ok()) {
                Some(t) => threshold = t,
                None => {
                    eprintln!("--threshold needs a number");
                    return ExitCode::from(2);
                }
            },
            _ => input = Some(PathBuf::from(a)),
        }
    }
    let Some(input) = input else {
        eprintln!("usage: report FILE.csv [--json] [--plots DIR] [--threshold T]");
        return ExitCode::from(2);
    };
    let run = || -> Result<(), kestrel_metrics::MetricsError> {
        let p = csv_input::load(&input)?;
        let r = Report::from_predictions(&p, threshold)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
        } else {
            print!("{}", r.to_text());
        }
        if let Some(dir) = &plots {
            plot::write_plots(&p, &r, dir)?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
