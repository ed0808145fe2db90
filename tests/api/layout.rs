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
