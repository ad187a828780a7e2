//! The docs stay true to the code: every file path a document names exists,
//! every local link resolves, every `cargo run`, `cargo bench` and
//! `scripts/…` command shown in README.md and docs/ names a real package,
//! binary, bench or script, with flags the binary accepts, and every `.md`
//! document a comment in the code names is in the repository.
//!
//! Flags are checked by running the built binary with the command's own
//! arguments followed by `--help`: clap rejects an unknown flag or a bad
//! value before it reaches `--help`, and prints help (exit 0) otherwise, so
//! nothing is started. The binaries must be built, as `scripts/test` does
//! with `cargo test --workspace --all-targets`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs.sort();
    docs
}

/// Spans between backticks, outside fenced blocks.
fn inline_code(text: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        spans.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    spans
}

/// Lines of fenced blocks, with `\` continuations joined.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            continue;
        }
        let line = line.trim();
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        out.push(std::mem::take(&mut pending));
    }
    out
}

const TREES: [&str; 5] = ["crates/", "web/", "docs/", "benches/", "scripts/"];

#[test]
fn every_path_the_docs_name_exists() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for span in inline_code(&text) {
            let path = span.split([':', ' ', '#']).next().unwrap_or("");
            if TREES.iter().any(|t| path.starts_with(t))
                && !path.contains('*')
                && !path.contains('<')
            {
                checked += 1;
                if !root().join(path).exists() {
                    missing.push(format!("{}: `{span}`", doc.display()));
                }
            }
        }
        // Local links: [text](target) that are not URLs or anchors.
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap_or("");
            if target.is_empty()
                || target.contains("://")
                || target.starts_with('#')
                || target.starts_with('<')
            {
                continue;
            }
            checked += 1;
            if !doc
                .parent()
                .unwrap()
                .join(target.split('#').next().unwrap())
                .exists()
            {
                missing.push(format!("{}: link {target}", doc.display()));
            }
        }
    }
    assert!(checked > 30, "found the references ({checked})");
    assert!(
        missing.is_empty(),
        "the docs name things that do not exist:\n{}",
        missing.join("\n")
    );
}

/// Workspace packages: (name, manifest directory).
fn packages() -> Vec<(String, PathBuf)> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.push(root().join("benches"));
    dirs.into_iter()
        .filter_map(|dir| {
            let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
            let name = manifest
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))?
                .trim_end_matches('"')
                .to_owned();
            Some((name, dir))
        })
        .collect()
}

fn binary(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_notify-server")).with_file_name(name)
}

#[test]
fn every_command_the_docs_show_names_real_things_and_parses() {
    let packages = packages();
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for command in commands(&text) {
            let words: Vec<&str> = command.split_whitespace().collect();
            let Some(start) = words
                .iter()
                .position(|w| *w == "cargo" || w.starts_with("scripts/"))
            else {
                continue;
            };
            let words = &words[start..];
            let place = format!("{}: {command}", doc.display());
            if words[0].starts_with("scripts/") {
                checked += 1;
                if !root().join(words[0]).is_file() {
                    problems.push(format!("{place}: no such script"));
                }
                continue;
            }
            let (cargo_args, program_args) = match words.iter().position(|w| *w == "--") {
                Some(i) => (&words[1..i], &words[i + 1..]),
                None => (&words[1..], &[][..]),
            };
            let package = cargo_args
                .windows(2)
                .find(|w| w[0] == "-p")
                .map(|w| w[1])
                .unwrap_or("notify-server");
            let Some((_, dir)) = packages.iter().find(|(name, _)| name == package) else {
                problems.push(format!("{place}: no package {package}"));
                continue;
            };
            match cargo_args.first() {
                Some(&"run") => {
                    checked += 1;
                    let bin = binary(package);
                    assert!(
                        bin.exists(),
                        "{} is not built: run `cargo build --workspace` first",
                        bin.display()
                    );
                    let output = Command::new(&bin)
                        .args(program_args)
                        .arg("--help")
                        .output()
                        .unwrap();
                    if !output.status.success() {
                        problems.push(format!(
                            "{place}: {}",
                            String::from_utf8_lossy(&output.stderr).trim()
                        ));
                    }
                }
                Some(&"bench") => {
                    checked += 1;
                    let bench = cargo_args
                        .windows(2)
                        .find(|w| w[0] == "--bench")
                        .map(|w| w[1]);
                    if let Some(bench) = bench
                        && !dir.join("benches").join(format!("{bench}.rs")).exists()
                    {
                        problems.push(format!("{place}: no bench {bench} in {package}"));
                    }
                }
                _ => {}
            }
        }
    }
    assert!(checked >= 10, "found the commands ({checked})");
    assert!(
        problems.is_empty(),
        "commands in the docs that would fail:\n{}",
        problems.join("\n")
    );
}

/// Source files whose comments may name documents: Rust, JavaScript, the
/// templates and the scripts, outside build output and installed packages.
fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "node_modules" | ".git") {
                source_files(&path, out);
            }
        } else if [".rs", ".js", ".mjs", ".html"]
            .iter()
            .any(|e| name.ends_with(e))
            || path
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|dir| dir == "scripts" || dir == ".ci")
        {
            out.push(path);
        }
    }
}

/// The text of a line's comment, if it has one: `//`, `#` (scripts),
/// `<!--` (templates) or a ` * ` continuation.
fn comment(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    ["//", "#", "<!--", "* ", "/*"]
        .iter()
        .find(|marker| trimmed.starts_with(*marker))
        .map(|_| trimmed)
        .or_else(|| line.find(" // ").map(|at| &line[at..]))
}

/// Words of `text` that name a Markdown file.
fn markdown_names(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || "`'\"()[],;".contains(c))
        .map(|word| word.trim_end_matches([':', '.']))
        .filter(|word| word.ends_with(".md") && word.len() > 3 && !word.contains('*'))
}

#[test]
fn every_document_a_code_comment_names_exists() {
    let root = root();
    let mut files = Vec::new();
    for tree in ["crates", "web", "benches", "fuzz", "scripts", ".ci"] {
        source_files(&root.join(tree), &mut files);
    }
    // This file's own examples name a missing document on purpose.
    files.retain(|file| !file.ends_with(file!()));
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (number, line) in text.lines().enumerate() {
            let Some(comment) = comment(line) else {
                continue;
            };
            for name in markdown_names(comment) {
                checked += 1;
                let found = [
                    root.clone(),
                    root.join("docs"),
                    file.parent().unwrap().into(),
                ]
                .iter()
                .any(|base| base.join(name).is_file());
                if !found {
                    missing.push(format!("{}:{}: {name}", file.display(), number + 1));
                }
            }
        }
    }
    assert!(
        checked >= 5,
        "found the documents comments name ({checked})"
    );
    assert!(
        missing.is_empty(),
        "comments name documents that are not in the repository:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_comment_check_sees_what_it_must() {
    assert_eq!(
        comment("    //! see `docs/protocol.md`."),
        Some("//! see `docs/protocol.md`.")
    );
    assert_eq!(
        comment("let x = 1; // PROTOCOL.md"),
        Some(" // PROTOCOL.md")
    );
    assert_eq!(comment("let path = \"README.md\";"), None);
    assert_eq!(
        markdown_names("(see docs/protocol.md), and `README.md`: PROTOCOL.md.").collect::<Vec<_>>(),
        ["docs/protocol.md", "README.md", "PROTOCOL.md"]
    );
}

/// Whether `line` says where a measured table comes from: `Measured
/// YYYY-MM-DD at `COMMIT` with `COMMAND`` (more may follow).
fn is_provenance(line: &str) -> bool {
    let Some(rest) = line.trim_start_matches('*').strip_prefix("Measured ") else {
        return false;
    };
    let date = rest.get(..10).unwrap_or("");
    let date_ok = date.len() == 10
        && date.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            _ => c.is_ascii_digit(),
        });
    let Some(rest) = rest.get(10..).and_then(|r| r.strip_prefix(" at `")) else {
        return false;
    };
    let Some((commit, rest)) = rest.split_once('`') else {
        return false;
    };
    date_ok
        && commit.len() >= 7
        && commit.chars().all(|c| c.is_ascii_hexdigit())
        && rest.starts_with(" with `")
}

/// The measured tables of `text` that no provenance line follows: their
/// first lines. A table is measured when it sits under a heading marked
/// *measured* (until the next heading of that level or above) or between
/// `scripts/figures`' `<!-- harness:… -->` markers; its provenance line
/// comes after it, before the next table or heading (in such a block, one
/// line before the block's end tells for all its tables).
fn tables_without_provenance(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    let mut measured_level: Option<usize> = None;
    let mut in_harness_block = false;
    let mut fenced = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            i += 1;
            continue;
        }
        if line.starts_with("<!-- harness:") {
            in_harness_block = true;
        } else if line.starts_with("<!-- /harness:") {
            in_harness_block = false;
        }
        if line.starts_with('#') {
            let level = line.chars().take_while(|&c| c == '#').count();
            if measured_level.is_some_and(|m| level <= m) {
                measured_level = None;
            }
            if line.contains("*measured*") {
                measured_level = Some(level);
            }
        }
        if line.starts_with('|') {
            let first = line.to_owned();
            while i < lines.len() && lines[i].starts_with('|') {
                i += 1;
            }
            if measured_level.is_some() || in_harness_block {
                // In a block `scripts/figures` writes, one line at its end
                // tells for every table in it.
                let told = if in_harness_block {
                    lines[i..]
                        .iter()
                        .take_while(|l| !l.starts_with("<!-- /harness:"))
                        .any(|l| is_provenance(l))
                } else {
                    lines[i..]
                        .iter()
                        .take_while(|l| !l.starts_with('|') && !l.starts_with('#'))
                        .any(|l| is_provenance(l))
                };
                if !told {
                    missing.push(first);
                }
            }
            continue;
        }
        i += 1;
    }
    missing
}

#[test]
fn every_measured_table_says_when_at_which_commit_and_with_what() {
    let mut missing = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for table in tables_without_provenance(&text) {
            missing.push(format!("{}: {table}", doc.display()));
        }
    }
    assert!(
        missing.is_empty(),
        "measured tables with no `Measured DATE at `COMMIT` with `COMMAND`` line after them:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_provenance_check_sees_what_it_must() {
    assert!(is_provenance(
        "Measured 2026-12-05 at `f66f3a1` with `notify-harness busy`, two rounds."
    ));
    assert!(!is_provenance("Measured on a 2-core machine."));
    assert!(!is_provenance("Measured 2026-12-05 at `main` with `x`."));
    let doc = "## Speed (*measured*)\n\n| a | b |\n| - | - |\n\nprose\n\n| c |\n\nMeasured 2026-12-05 at `abcdef1` with `cmd`.\n\n## Other\n\n| d |\n";
    assert_eq!(tables_without_provenance(doc), vec!["| a | b |".to_owned()]);
    let block = "<!-- harness:busy -->\n| x |\n<!-- /harness:busy -->\n";
    assert_eq!(tables_without_provenance(block), vec!["| x |".to_owned()]);
    let told = "<!-- harness:sweep -->\n| x |\n\n| y |\n\nMeasured 2026-12-05 at `abcdef1` with `h`.\n<!-- /harness:sweep -->\n";
    assert!(tables_without_provenance(told).is_empty());
}
