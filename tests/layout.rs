//! The single-table layout has one home: no key or index string is written outside the typed
//! table layer (`shared/src/table/`), and index attribute names only in the store's `Index`.

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
    let prefixes = [
        "MEMBER",
        "LEDGER",
        "PHONE",
        "PURCHASE",
        "REFUND",
        "REWARD",
        "REDEMPTION",
        "VOUCHER",
        "REWARDCOUNT",
        "GIFT",
        "IDEMPOTENCY",
        "BIRTHDAY",
        "TIEREXPIRY",
        "SEG",
        "SEGMENTS",
        "SEGRUN",
        "MEMBERS",
    ];
    let mut found = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel.starts_with("shared/src/table/") || rel == "tests/layout.rs" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let keyish = prefixes.iter().any(|p| line.contains(&format!("\"{p}#")))
                || line.contains("\"PROFILE\"")
                || line.contains("\"CATALOG\"");
            let index_attr = [
                "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "GSI3PK", "GSI3SK", "GSI4PK", "GSI5PK",
                "GSI6PK", "GSI7PK",
            ]
            .iter()
            .any(|a| line.contains(a))
                && rel != "shared/src/store/mod.rs";
            if keyish || index_attr {
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
