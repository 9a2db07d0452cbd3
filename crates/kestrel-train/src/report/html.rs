//! `report.html`: one self-contained page — inline CSS, every image a base64 `data:image/png`
//! URI, no script, no external font or link — so the file can be mailed or archived alone.

use super::base64;
use super::epoch_log::EpochPoint;
use super::plots::Plot;
use crate::driver::run_dir::Summary;
use std::fmt::Write as _;

/// What the page is built from.
pub struct Page<'a> {
    /// Run folder name, for the title.
    pub run_name: &'a str,
    /// `summary.json`, when present.
    pub summary: Option<&'a Summary>,
    /// The epoch log.
    pub epochs: &'a [EpochPoint],
    /// The plots with their PNG bytes.
    pub plots: &'a [(Plot, Vec<u8>)],
    /// Remarks on what is missing.
    pub notes: &'a [String],
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number for a table cell: 4 significant-ish decimals, scientific when tiny.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

const STYLE: &str = "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;\
margin:2em auto;max-width:1250px;padding:0 1em;color:#222}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em}\
.sub{color:#555;margin-top:0}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:.25em .7em;text-align:left}th{background:#f3f3f3}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1em 0 2em 0}img{max-width:100%;height:auto;border:1px solid #ddd}\
figcaption{color:#444;font-size:.92em;margin-top:.3em}.note{color:#8a5300}";

/// The page as HTML text.
pub fn render(p: &Page<'_>) -> String {
    let mut h = String::new();
    let title = match p.summary {
        Some(s) => format!("{} — {} ({})", p.run_name, s.model, s.task),
        None => p.run_name.to_string(),
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>kestrel report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>Training report: {}</h1>\n",
        escape(&title),
        escape(&title)
    );
    match p.summary {
        Some(s) => {
            let val: Vec<String> = s
                .val
                .iter()
                .map(|(k, v)| format!("{} {}", escape(k), num(*v)))
                .collect();
            let _ = writeln!(
                h,
                "<p class=\"sub\">Model <b>{}</b>, task <b>{}</b>; best epoch <b>{}</b> of {} \
                 (validation: {}); {:.1} s of training.</p>",
                escape(&s.model),
                escape(&s.task),
                s.best_epoch,
                s.epochs_run,
                val.join(", "),
                s.train_seconds
            );
        }
        None => h.push_str("<p class=\"sub\">No summary.json: the run did not finish.</p>\n"),
    }
    final_epoch_table(&mut h, p.epochs);
    for note in p.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", escape(note));
    }
    for (plot, png) in p.plots {
        let _ = writeln!(
            h,
            "<h2>{}</h2>\n<figure>\n<img src=\"data:image/png;base64,{}\" width=\"{}\" \
             height=\"{}\" alt=\"{}\">\n<figcaption>{} <span class=\"sub\">(plots/{})</span>\
             </figcaption>\n</figure>",
            escape(&plot.title),
            base64::encode(png),
            plot.size.0,
            plot.size.1,
            escape(&plot.title),
            escape(&plot.caption),
            escape(&plot.file)
        );
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// The table of the last epoch's numbers.
fn final_epoch_table(h: &mut String, epochs: &[EpochPoint]) {
    let Some(e) = epochs.iter().max_by_key(|e| e.epoch) else {
        h.push_str("<p class=\"note\">The metrics log has no epoch.</p>\n");
        return;
    };
    let _ = writeln!(
        h,
        "<h2>Final epoch ({} of {})</h2>\n<table>\n<tr><th>quantity</th><th>value</th></tr>",
        e.epoch,
        epochs.len()
    );
    let mut row = |name: String, v: f64| {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            escape(&name),
            num(v)
        );
    };
    for (k, v) in &e.train_loss {
        row(format!("train loss ({k})"), *v);
    }
    if let Some(a) = e.train_accuracy {
        row("train accuracy".into(), a);
    }
    for (k, v) in &e.val {
        row(format!("val {k}"), *v);
    }
    for (k, v) in &e.lr {
        row(format!("learning rate ({k})"), *v);
    }
    for (k, v) in &e.task_weights {
        row(format!("task weight ({k})"), *v);
    }
    if let Some(s) = e.seconds {
        row("seconds".into(), s);
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn numbers_are_readable() {
        assert_eq!(num(0.5), "0.5000");
        assert_eq!(num(3e-4), "3.000e-4");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(0.0), "0.0000");
    }
}
