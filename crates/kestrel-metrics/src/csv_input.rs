//! Reading the predictions CSV of `kestrel metrics`.
//!
//! The file has a header line. It holds a `y_true` column and either a
//! `score` column (binary: `y_true` is 0 or 1, `score` the score of class 1)
//! or one `p_<class>` column per class (multiclass: `y_true` is a class name
//! `<class>`, compared as text or, when both are numbers, numerically; the
//! values are probabilities in `[0, 1]`). Other columns are ignored. Fields
//! may be quoted and surrounded by spaces.

use crate::predictions::Predictions;
use crate::{MetricsError, Result};
use std::io::Read;
use std::path::Path;

/// Reads and validates a predictions CSV.
///
/// # Errors
/// [`MetricsError::Io`] when the file cannot be read; [`MetricsError::Csv`]
/// naming the file, line and column, and what was expected, for any
/// malformed content.
pub fn load(path: &Path) -> Result<Predictions> {
    let file = std::fs::File::open(path).map_err(|source| MetricsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(std::io::BufReader::new(file), path)
}

/// The most `p_<class>` columns a predictions CSV may have. The report's confusion matrix has k²
/// cells (held as counts and as weights, and printed), so k is bounded before anything of that
/// size is allocated: 4096 classes make 16.8 million cells, about 134 MB per copy.
pub const MAX_CLASSES: usize = 4096;

/// Where the class scores are.
enum Layout {
    Binary {
        score: usize,
    },
    Multiclass {
        columns: Vec<usize>,
        names: Vec<String>,
    },
}

fn csv_error(path: &Path, line: u64, column: &str, message: impl Into<String>) -> MetricsError {
    MetricsError::Csv {
        path: path.to_path_buf(),
        line,
        column: column.to_string(),
        message: message.into(),
    }
}

fn read_error(path: &Path, e: csv::Error) -> MetricsError {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(source) => MetricsError::Io {
            path: path.to_path_buf(),
            source,
        },
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => csv_error(
            path,
            line,
            "-",
            format!("expected {expected_len} fields as in the header, found {len}"),
        ),
        csv::ErrorKind::Utf8 { .. } => csv_error(path, line, "-", "expected UTF-8 text"),
        other => csv_error(path, line, "-", format!("{other:?}")),
    }
}

/// Parses predictions CSV text; `path` only names the source in errors.
///
/// # Errors
/// As [`load`].
pub fn parse<R: Read>(reader: R, path: &Path) -> Result<Predictions> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let header = rdr.headers().map_err(|e| read_error(path, e))?.clone();
    const WANT: &str = "expected a header with y_true and either score or p_<class> columns";
    if header.iter().all(|h| h.is_empty()) {
        return Err(csv_error(path, 1, "-", format!("empty file: {WANT}")));
    }
    let mut y_col = None;
    let mut score_col = None;
    let mut p_cols = Vec::new();
    let mut p_names: Vec<String> = Vec::new();
    for (i, h) in header.iter().enumerate() {
        let duplicate = |name: &str| csv_error(path, 1, name, "column appears twice in the header");
        if h == "y_true" {
            if y_col.replace(i).is_some() {
                return Err(duplicate(h));
            }
        } else if h == "score" {
            if score_col.replace(i).is_some() {
                return Err(duplicate(h));
            }
        } else if let Some(name) = h.strip_prefix("p_") {
            if p_cols.len() == MAX_CLASSES {
                return Err(csv_error(
                    path,
                    1,
                    h,
                    format!(
                        "more than {MAX_CLASSES} p_<class> columns: expected at most \
                         {MAX_CLASSES} classes (the confusion matrix has k x k cells, one per \
                         pair of classes)"
                    ),
                ));
            }
            if name.is_empty() {
                return Err(csv_error(path, 1, h, "expected a class name after p_"));
            }
            if p_names.iter().any(|n| n == name) {
                return Err(duplicate(h));
            }
            p_cols.push(i);
            p_names.push(name.to_string());
        }
    }
    let y_col =
        y_col.ok_or_else(|| csv_error(path, 1, "y_true", format!("missing column: {WANT}")))?;
    let layout = match (score_col, p_cols.len()) {
        (Some(_), n) if n > 0 => {
            return Err(csv_error(
                path,
                1,
                "score",
                "found both a score column and p_<class> columns: expected one or the other",
            ))
        }
        (Some(score), _) => Layout::Binary { score },
        (None, 0) => {
            return Err(csv_error(
                path,
                1,
                "score",
                format!("missing column: {WANT}"),
            ))
        }
        (None, 1) => {
            return Err(csv_error(
                path,
                1,
                &header[p_cols[0]],
                "expected at least two p_<class> columns (use a score column for binary input)",
            ))
        }
        (None, _) => Layout::Multiclass {
            columns: p_cols,
            names: p_names,
        },
    };

    let mut y_true: Vec<usize> = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(read_error(path, e)),
        }
        let line = record.position().map_or(0, |p| p.line());
        let y = &record[y_col];
        match &layout {
            Layout::Binary { score } => {
                y_true.push(parse_binary_label(y).ok_or_else(|| {
                    csv_error(
                        path,
                        line,
                        "y_true",
                        format!("expected 0 or 1, found \"{y}\""),
                    )
                })?);
                values.push(parse_number(
                    path,
                    line,
                    &header[*score],
                    &record[*score],
                    false,
                )?);
            }
            Layout::Multiclass { columns, names } => {
                y_true.push(match_class(y, names).ok_or_else(|| {
                    csv_error(
                        path,
                        line,
                        "y_true",
                        format!("expected one of the classes {} (from the p_<class> columns), found \"{y}\"", list(names)),
                    )
                })?);
                for &c in columns {
                    values.push(parse_number(path, line, &header[c], &record[c], true)?);
                }
            }
        }
    }
    if y_true.is_empty() {
        return Err(csv_error(path, 1, "-", "no data rows after the header"));
    }
    match layout {
        Layout::Binary { .. } => Predictions::binary(&y_true, values),
        Layout::Multiclass { names, .. } => Predictions::multiclass(names, &y_true, values),
    }
}

fn parse_binary_label(s: &str) -> Option<usize> {
    match s.parse::<f64>() {
        Ok(0.0) => Some(0),
        Ok(1.0) => Some(1),
        _ => None,
    }
}

fn match_class(s: &str, names: &[String]) -> Option<usize> {
    if let Some(i) = names.iter().position(|n| n == s) {
        return Some(i);
    }
    let v = s.parse::<f64>().ok()?;
    names
        .iter()
        .position(|n| n.parse::<f64>().is_ok_and(|x| x == v))
}

fn list(names: &[String]) -> String {
    if names.len() <= 10 {
        names.join(", ")
    } else {
        format!("{}, ... ({} classes)", names[..10].join(", "), names.len())
    }
}

fn parse_number(path: &Path, line: u64, column: &str, s: &str, probability: bool) -> Result<f64> {
    let v: f64 = s.parse().map_err(|_| {
        csv_error(
            path,
            line,
            column,
            format!("expected a number, found \"{s}\""),
        )
    })?;
    if !v.is_finite() {
        return Err(csv_error(
            path,
            line,
            column,
            format!("expected a finite number, found {s}"),
        ));
    }
    if probability && !(0.0..=1.0).contains(&v) {
        return Err(csv_error(
            path,
            line,
            column,
            format!("expected a probability in [0, 1], found {s}"),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictions::Scores;

    fn p(text: &str) -> Result<Predictions> {
        parse(text.as_bytes(), Path::new("in.csv"))
    }

    fn msg(text: &str) -> String {
        p(text).unwrap_err().to_string()
    }

    #[test]
    fn binary_file() {
        let r = p("id,y_true,score\na,0,0.25\nb, 1 ,\"0.75\"\nc,1.0,1e-3\n").unwrap();
        assert_eq!(r.y_true(), &[0, 1, 1]);
        assert_eq!(r.scores(), &Scores::Binary(vec![0.25, 0.75, 0.001]));
    }

    #[test]
    fn multiclass_file() {
        let r = p("y_true,p_cat,p_dog\ncat,0.9,0.1\ndog,0.2,0.8\n").unwrap();
        assert_eq!(r.classes(), &["cat".to_string(), "dog".to_string()]);
        assert_eq!(r.y_true(), &[0, 1]);
        let r = p("y_true,p_0,p_1,p_2\n2.0,0.1,0.1,0.8\n").unwrap();
        assert_eq!(r.y_true(), &[2]);
    }

    #[test]
    fn errors_name_line_column_and_expectation() {
        assert_eq!(
            msg("y_true,score\n0,0.5\n1,abc\n"),
            "in.csv: line 3, column score: expected a number, found \"abc\""
        );
        assert_eq!(
            msg("y_true,score\n2,0.5\n"),
            "in.csv: line 2, column y_true: expected 0 or 1, found \"2\""
        );
        assert_eq!(
            msg("y_true,score\n0,NaN\n"),
            "in.csv: line 2, column score: expected a finite number, found NaN"
        );
        assert_eq!(
            msg("y_true,score\n0,0.5,7\n"),
            "in.csv: line 2, column -: expected 2 fields as in the header, found 3"
        );
        assert_eq!(
            msg("y_true,p_a,p_b\nc,0.5,0.5\n"),
            "in.csv: line 2, column y_true: expected one of the classes a, b (from the p_<class> columns), found \"c\""
        );
        assert_eq!(
            msg("y_true,p_a,p_b\na,1.5,0.5\n"),
            "in.csv: line 2, column p_a: expected a probability in [0, 1], found 1.5"
        );
        assert!(msg("score\n0.5\n").contains("line 1, column y_true: missing column"));
        assert!(msg("y_true\n1\n").contains("line 1, column score: missing column"));
        assert!(msg("y_true,score,p_a,p_b\n").contains("both"));
        assert!(msg("y_true,p_a\na,1\n").contains("at least two"));
        assert!(msg("y_true,score,score\n").contains("twice"));
        assert!(msg("y_true,score\n").contains("no data rows"));
        assert!(msg("").contains("empty file"));
        let e = load(Path::new("/nonexistent/x.csv")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/x.csv: "), "{e}");
    }

    #[test]
    fn the_class_count_is_capped_before_anything_of_its_square_is_built() {
        let header = |k: usize| {
            let mut h = String::from("y_true");
            for c in 0..k {
                h.push_str(&format!(",p_{c}"));
            }
            h
        };
        // At the cap: read (one row, all mass on class 0).
        let mut row = String::from("0,1");
        row.push_str(&",0".repeat(MAX_CLASSES - 1));
        let r = p(&format!("{}\n{row}\n", header(MAX_CLASSES))).unwrap();
        assert_eq!(r.n_classes(), MAX_CLASSES);
        // One more column: refused at the header, naming the file, the column and the limit.
        let e = msg(&format!("{}\n", header(MAX_CLASSES + 1)));
        assert!(
            e.starts_with("in.csv: line 1, column p_4096: more than 4096 p_<class> columns")
                && e.contains("at most 4096 classes")
                && e.contains("confusion matrix"),
            "{e}"
        );
    }
}
