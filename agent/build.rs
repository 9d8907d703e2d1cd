//! Embeds `python/` (deployer's `curtin` compat package) in the binary: a generated table of
//! `(relative path, include_bytes!(...))`, read by `src/curtin_py.rs`.

use std::fs;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "__pycache__" {
                walk(&p, out);
            }
        } else if name.ends_with(".py") {
            out.push(p);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = vec![];
    walk(&root, &mut files);
    let mut src = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let rel = f.strip_prefix(&root).expect("under python/");
        src.push_str(&format!(
            "    ({:?}, include_bytes!({:?})),\n",
            rel.to_str().expect("utf-8 path"),
            f.to_str().expect("utf-8 path")
        ));
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("python_files.rs");
    fs::write(out, src).expect("writing python_files.rs");
}
