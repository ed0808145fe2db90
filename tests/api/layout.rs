//! The single-table layout has one home: no key string (a literal such as `"CAMPAIGN#"`, any
//! capitals before a `#`) is written outside the typed table layer (`shared/src/table/`), and
//! index attribute names (`GSI<n>PK`, `GSI<n>SK`) only in the store's `Index`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() && name != "target" && !name.starts_with('.') && name != "node_modules" {
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_key_or_index_string_outside_the_table_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut files = Vec::new();
    for d in ["shared", "functions", "local", "bench", "tests"] {
        rust_files(&root.join(d), &mut files);
    }
    assert!(files.len() > 40, "found only {} files", files.len());
    let mut found = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        // The table layer owns the keys; the store's contract test writes raw keys of its own
        // (it tests the layer below the table), and this file spells the patterns.
        if rel.starts_with("shared/src/table/")
            || rel == "tests/api/store_contract.rs"
            || rel == "tests/api/layout.rs"
        {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            // The index attribute names live in the store's `Index` (shared/src/store/mod.rs).
            let index_attr = gsi_attribute(line) && rel != "shared/src/store/mod.rs";
            if key_literal(line)
                || index_attr
                || line.contains("\"PROFILE\"")
                || line.contains("\"CATALOG\"")
            {
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "key strings outside the table layer:\n{}",
        found.join("\n")
    );
}

/// A string literal that starts like a key: `"` then capitals, digits or `_`, then `#`.
fn key_literal(line: &str) -> bool {
    let b = line.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'"' && {
            let mut k = i + 1;
            while k < b.len()
                && (b[k].is_ascii_uppercase() || b[k].is_ascii_digit() || b[k] == b'_')
            {
                k += 1;
            }
            k > i + 1 && k < b.len() && b[k] == b'#'
        }
    })
}

/// An index attribute name: `GSI`, digits, then `PK` or `SK`.
fn gsi_attribute(line: &str) -> bool {
    line.match_indices("GSI").any(|(i, _)| {
        let rest = &line[i + 3..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && (rest[digits..].starts_with("PK") || rest[digits..].starts_with("SK"))
    })
}

#[test]
fn the_layout_check_finds_every_key_shape() {
    for keyish in [
        r#"format!("CAMPAIGN#{id}")"#,
        r#"let k = "EVENTS#2026";"#,
        r#""DAY#""#,
        r#""PART#3""#,
        r#""FLOW#x""#,
        r#""EVENT#""#,
    ] {
        assert!(key_literal(keyish), "{keyish}");
    }
    for not in [r#""a#b""#, r##"r#"x"#"##, r##""#""##, "MEMBER#"] {
        assert!(!key_literal(not), "{not}");
    }
    assert!(gsi_attribute("item[\"GSI8PK\"]") && gsi_attribute("GSI12SK"));
    assert!(!gsi_attribute("GSI8") && !gsi_attribute("GSIPK"));
}

/// The layers of `shared/src` only look down: domain ← table ← service ← http. A file of a
/// layer that names a layer above it is a loop in the house.
#[test]
fn the_layers_of_the_shared_library_only_look_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    let rules: [(&str, &[&str]); 4] = [
        (
            "domain",
            &[
                "crate::service",
                "crate::http",
                "crate::table",
                "crate::store",
                "crate::error",
            ],
        ),
        ("store", &["crate::service", "crate::http", "crate::table"]),
        ("table", &["crate::service", "crate::http"]),
        ("service", &["crate::http"]),
    ];
    let mut found = Vec::new();
    for (layer, above) in rules {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "no files under {layer}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                for a in above {
                    if line.contains(a) {
                        found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a layer names one above it:\n{}",
        found.join("\n")
    );
}

/// The files of one folder a file names (`super::x`, `crate::<folder>::x`), outside its tests.
fn names_in_folder(text: &str, folder: &str, files: &[String]) -> Vec<String> {
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut named = Vec::new();
    for prefix in ["super::".to_owned(), format!("crate::{folder}::")] {
        for (at, _) in text.match_indices(&prefix) {
            let rest = &text[at + prefix.len()..];
            // `super::{a::X, b::Y}` names a and b; `super::a::X` names a.
            let heads: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap_or(group.len())]
                    .split(',')
                    .filter_map(|p| p.trim().split_once("::").map(|(h, _)| h))
                    .collect(),
                None => rest.split_once("::").map(|(h, _)| h).into_iter().collect(),
            };
            for h in heads {
                if files.iter().any(|f| f == h) && !named.iter().any(|n| n == h) {
                    named.push(h.to_owned());
                }
            }
        }
    }
    named
}

/// A circle in `graph` (file → the files of its folder it names), if there is one.
fn circle(graph: &std::collections::BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        at: &str,
        graph: &std::collections::BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == at) {
            let mut c = path[i..].to_vec();
            c.push(at.to_owned());
            return Some(c);
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_owned());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(at.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph
        .keys()
        .find_map(|k| visit(k, graph, &mut Vec::new(), &mut done))
}

/// No import circle inside a folder of `shared/src`: within a layer too, files only look one
/// way, so each can be read (and moved) without the others it is named by.
#[test]
fn no_folder_of_the_shared_library_has_an_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    let mut circles = Vec::new();
    for folder in ["domain", "store", "table", "service", "http"] {
        let dir = src.join(folder);
        let files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().to_string();
                name.strip_suffix(".rs")
                    .filter(|n| *n != "mod")
                    .map(str::to_owned)
            })
            .collect();
        let graph: std::collections::BTreeMap<String, Vec<String>> = files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(dir.join(format!("{f}.rs"))).unwrap();
                let named = names_in_folder(&text, folder, &files)
                    .into_iter()
                    .filter(|n| n != f)
                    .collect();
                (f.clone(), named)
            })
            .collect();
        if let Some(c) = circle(&graph) {
            circles.push(format!("{folder}: {}", c.join(" → ")));
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn the_circle_check_finds_a_circle_through_a_group_import() {
    let files: Vec<String> = ["event", "member", "ledger"].map(String::from).to_vec();
    assert_eq!(
        names_in_folder(
            "use super::{member::ProfileField, ledger::LedgerEntry};\n#[cfg(test)]\nuse super::event::X;",
            "domain",
            &files
        ),
        vec!["member", "ledger"]
    );
    assert_eq!(
        names_in_folder("use crate::domain::event::Event;", "domain", &files),
        vec!["event"]
    );
    let graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(circle(&graph).unwrap(), vec!["a", "b", "c", "a"]);
    let mut acyclic = graph.clone();
    acyclic.insert("c".into(), vec![]);
    assert!(circle(&acyclic).is_none());
}

/// The targets a manifest keeps out of `cargo test --tests` (`test = false`): `(kind, path)`,
/// a library's path defaulting to `src/lib.rs`.
fn untested_targets(manifest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for section in manifest.split("\n[").skip(1) {
        let (head, body) = section.split_once('\n').unwrap_or((section, ""));
        let kind = head.trim_matches(|c| c == '[' || c == ']');
        if kind != "lib" && kind != "bin" {
            continue;
        }
        let value = |key: &str| {
            body.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().strip_prefix('=').map(str::trim))
                .map(|v| v.trim_matches('"').to_owned())
        };
        if value("test").as_deref() == Some("false") {
            let path = value("path").unwrap_or_else(|| "src/lib.rs".into());
            out.push((kind.to_owned(), path));
        }
    }
    out
}

/// The suite runs `cargo test --tests`, which skips targets marked `test = false` (wiring-only
/// binaries and libraries without unit tests: 24 empty test binaries built and linked for
/// nothing, issue 31). Such a target must stay without tests, or they would silently not run: a
/// test added to one fails this until its manifest drops `test = false`.
#[test]
fn a_target_kept_out_of_the_test_run_has_no_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut found = Vec::new();
    let mut untested = 0;
    for dir in ["shared", "local", "bench", "tests"]
        .into_iter()
        .map(|d| root.join(d))
        .chain(
            std::fs::read_dir(root.join("functions"))
                .unwrap()
                .map(|e| e.unwrap().path()),
        )
    {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let targets = untested_targets(&manifest);
        let bins: Vec<&str> = targets
            .iter()
            .filter(|(k, _)| k == "bin")
            .map(|(_, p)| p.as_str())
            .collect();
        for (kind, path) in &targets {
            untested += 1;
            // A binary is its one file; a library is every file beside it but the binaries'.
            let files: Vec<PathBuf> = if kind == "bin" {
                vec![dir.join(path)]
            } else {
                let mut all = Vec::new();
                rust_files(dir.join(path).parent().unwrap(), &mut all);
                all.into_iter()
                    .filter(|f| !bins.iter().any(|b| f.ends_with(b)))
                    .collect()
            };
            for f in files {
                let text = std::fs::read_to_string(&f).unwrap();
                if text
                    .lines()
                    .any(|l| matches!(l.trim(), "#[cfg(test)]" | "#[test]"))
                {
                    found.push(format!("{} ({kind} with test = false)", f.display()));
                }
            }
        }
    }
    assert!(
        untested >= 20,
        "only {untested} targets marked test = false"
    );
    assert!(found.is_empty(), "tests that would never run: {found:#?}");
}

#[test]
fn untested_targets_are_read_from_the_manifest() {
    let manifest = "[package]\nname = \"x\"\n\n[lib]\ntest = false\n\n[[bin]]\nname = \"a\"\npath = \"src/a.rs\"\ntest = false\n\n[[bin]]\nname = \"b\"\npath = \"src/b.rs\"\n\n[dependencies]\ntest = false\n";
    assert_eq!(
        untested_targets(manifest),
        vec![
            ("lib".to_owned(), "src/lib.rs".to_owned()),
            ("bin".to_owned(), "src/a.rs".to_owned())
        ]
    );
}

/// The lines of a Rust file before its `#[cfg(test)] mod tests`: the code a reader has to hold.
fn lines_without_tests(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].starts_with("mod tests"))
        .unwrap_or(lines.len())
}

#[test]
fn the_table_layer_is_split_by_feature_into_files_under_600_lines() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src/table");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() >= 10, "found only {} files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = lines_without_tests(&std::fs::read_to_string(f).unwrap());
            (n > 600).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "table files over 600 lines: {long:#?}");
}

#[test]
fn a_file_is_measured_without_its_tests() {
    let text = "a\nb\n#[cfg(test)]\nmod tests {\n    x\n}\n";
    assert_eq!(lines_without_tests(text), 2);
    assert_eq!(lines_without_tests("a\nb\nc\n"), 3);
    // A `#[cfg(test)]` on anything but the tests module does not end the count.
    assert_eq!(lines_without_tests("a\n#[cfg(test)]\nfn f() {}\nb\n"), 4);
}
