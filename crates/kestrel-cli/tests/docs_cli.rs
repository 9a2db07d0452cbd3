//! `docs/cli.md` is the command-line contract; this keeps it in step with the binary. Every verb
//! and sub-verb that `kestrel --help` and `kestrel bench --help` list must have its section
//! (a heading ``## `kestrel VERB` ``) in the document, and every flag that `kestrel VERB --help` lists must
//! be named in that section (`--help` and `--version`, which every verb has, anywhere in the
//! document). A flag added to the code without a line in the document fails here.

mod common;
use common::{assert_ok, kestrel};

/// The text of docs/cli.md.
fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The output of `kestrel WORDS... --help`.
fn help(words: &[&str]) -> String {
    let mut args = words.to_vec();
    args.push("--help");
    let o = kestrel(&args);
    assert_ok(&o, &args.join(" "));
    String::from_utf8(o.stdout).expect("help is UTF-8")
}

/// The sub-commands clap lists under `Commands:`, without its own `help`.
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The long flags of clap's option lines (`  -h, --help  …`, `      --run <RUN>  …`).
fn flags(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            // A short alias first: `-h, --help`.
            let l = match l.as_bytes() {
                [b'-', c, b',', b' ', ..] if c.is_ascii_alphabetic() => &l[4..],
                _ => l,
            };
            let l = l.strip_prefix("--")?;
            let end = l
                .find(|c: char| c.is_whitespace() || c == '=')
                .unwrap_or(l.len());
            Some(l[..end].to_string())
        })
        .collect()
}

/// The section under the heading ``## `kestrel VERB` ``, up to the next `## ` heading.
fn section<'a>(doc: &'a str, verb: &str) -> &'a str {
    let heading = format!("\n## `kestrel {verb}`\n");
    let start = doc
        .find(&heading)
        .unwrap_or_else(|| panic!("docs/cli.md has no section {:?}", heading.trim()))
        + 1;
    let rest = &doc[start..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |i| i + 2);
    &rest[..end]
}

/// Whether `text` names `flag` as a whole word (`--run` is not named by `--runs`).
fn names(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(i, _)| {
        !text[i + flag.len()..]
            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// The verbs to check, with sub-verbs spelt out (`bench infer`, `bench train`).
fn verbs() -> Vec<String> {
    let mut out = Vec::new();
    for verb in commands(&help(&[])) {
        let subs = commands(&help(&[&verb]));
        if subs.is_empty() {
            out.push(verb);
        } else {
            out.extend(subs.into_iter().map(|s| format!("{verb} {s}")));
        }
    }
    out
}

#[test]
fn every_verb_and_flag_of_the_binary_is_in_docs_cli_md() {
    let doc = doc();
    let verbs = verbs();
    // The parsing found what it should: guards against a clap layout this test no longer reads.
    for v in [
        "train",
        "eval",
        "predict",
        "export",
        "bench infer",
        "bench train",
        "report",
    ] {
        assert!(verbs.iter().any(|x| x == v), "{v} not among {verbs:?}");
    }
    let mut missing = Vec::new();
    for verb in &verbs {
        let words: Vec<&str> = verb.split(' ').collect();
        let flags = flags(&help(&words));
        assert!(flags.iter().any(|f| f == "help"), "{verb}: no flags read");
        let section = section(&doc, verb);
        for flag in flags {
            let flag = format!("--{flag}");
            let text = if flag == "--help" || flag == "--version" {
                doc.as_str()
            } else {
                section
            };
            if !names(text, &flag) {
                missing.push(format!("kestrel {verb} {flag}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/cli.md does not document: {}",
        missing.join(", ")
    );
}

#[test]
fn the_help_parsers_read_clap_layouts() {
    let h = "Usage: kestrel bench <COMMAND>\n\nCommands:\n  infer  Inference\n  train  Time\n  help   Print\n\nOptions:\n  -h, --help     Print help\n      --run <RUN>  The run\n      --top-k=<K>  K\n          - runtime: not a flag\n";
    assert_eq!(commands(h), ["infer", "train"]);
    assert_eq!(flags(h), ["help", "run", "top-k"]);
    assert!(names("`--run DIR`", "--run") && !names("`--runs N`", "--run"));
    let doc = "# t\n\n## `kestrel a`\n\n`--x`\n\n## `kestrel b`\n\n`--y`\n";
    assert!(section(doc, "a").contains("--x") && !section(doc, "a").contains("--y"));
    assert!(section(doc, "b").ends_with("`--y`\n"));
}
