//! Golden outputs of the generator: `tests/golden/<case>/{machine,image}.yaml` in,
//! `expected.yaml` (the merged config) or `expected-error.txt` out; `flat-uefi` also has
//! `expected-user-data.yaml`. Regenerate with `PRESEED_REGEN=1 cargo test -p preseed --test
//! golden`, then review the diff by hand against maas-preseed.md.

use std::path::Path;

use preseed::generate::{self, userdata};
use preseed::load::{load_documents, merge};
use yaml_serde::Value;

fn regen() -> bool {
    std::env::var_os("PRESEED_REGEN").is_some()
}

fn compare(path: &Path, actual: &str) {
    if regen() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with PRESEED_REGEN=1)", path.display()));
    assert!(
        expected == actual,
        "{} differs; got:\n{actual}",
        path.display()
    );
}

/// The archive, read the way curtin reads one, merges to the same config as `--merged`.
fn archive_merges_to(archive: &str, merged: &Value) {
    assert!(archive.starts_with("#curtin-config-archive\n"));
    let items: Vec<Value> = yaml_serde::from_str(archive).unwrap();
    let mut out = Value::Mapping(Default::default());
    for item in items {
        assert_eq!(item["type"], Value::from("text/curtin-config"));
        let content = item["content"].as_str().unwrap();
        assert!(content.starts_with("#curtin-config\n"));
        merge(&mut out, yaml_serde::from_str(content).unwrap());
    }
    assert_eq!(&out, merged);
}

#[test]
fn golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 15, "golden cases missing");
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let result = generate::parse_machine("machine.yaml", &read("machine.yaml")).and_then(|m| {
            let r = generate::parse_resource("image.yaml", &read("image.yaml"))?;
            generate::generate(&m, &r).map(|g| (m, g))
        });
        match result {
            Ok((m, g)) => {
                assert!(!name.starts_with("err-"), "{name}: expected an error");
                let merged_text = g.merged_yaml();
                compare(&dir.join("expected.yaml"), &merged_text);
                let merged: Value = yaml_serde::from_str(&merged_text).unwrap();
                assert_eq!(merged, g.merged(), "{name}: merged YAML round trip");
                archive_merges_to(&g.archive_yaml(), &merged);
                // What we generate loads and validates through the config model, both forms.
                for (form, text) in [
                    ("merged", merged_text.clone()),
                    ("archive", g.archive_yaml()),
                ] {
                    let loaded = load_documents(vec![(format!("{name}/{form}"), text)])
                        .unwrap_or_else(|e| panic!("{name} ({form}) does not load: {e}"));
                    let src = loaded.config.sources_sorted().next().expect("a source");
                    assert_eq!(
                        src.kind.prefix(),
                        g.checked.source_type,
                        "{name}: source type"
                    );
                    assert!(g.source.ends_with(&src.uri), "{name}: source uri");
                    assert!(loaded.config.storage.is_some(), "{name}: storage");
                    assert!(loaded.config.network.is_some(), "{name}: network");
                    assert!(
                        loaded.config.reporting.contains_key("maas"),
                        "{name}: reporting"
                    );
                    for w in &loaded.warnings {
                        eprintln!("{name} ({form}): warning: {w}");
                    }
                }
                if name == "flat-uefi" {
                    let ud = userdata::render(&m, &g, &Default::default());
                    compare(&dir.join("expected-user-data.yaml"), &ud);
                }
            }
            Err(e) => {
                assert!(name.starts_with("err-"), "{name}: unexpected error: {e}");
                compare(&dir.join("expected-error.txt"), &format!("{e}\n"));
            }
        }
    }
}
