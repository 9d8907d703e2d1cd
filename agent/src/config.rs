//! Reading the config the way curtin's commands do: every `-c FILE_OR_URL` in order, then every
//! `--set key/path=value` (`json:` prefix: the value is JSON), or the file named by $CONFIG when
//! neither is given (as every curtin child process reads the merged config).
//!
//! A config failure is tagged [`Kind::Config`] (exit code 2).

use anyhow::{anyhow, Context};
use preseed::load::Loaded;
use yaml_serde::Value;

use crate::cli::Global;
use crate::error::{Kind, KindExt};

/// Load, merge and type the config named by the command line (or $CONFIG).
pub fn load(global: &Global) -> anyhow::Result<Loaded> {
    let mut docs = Vec::new();
    if global.config.is_empty() && global.set.is_empty() {
        match std::env::var("CONFIG") {
            Ok(path) if !path.is_empty() => docs.push(read(&path)?),
            // No argument and no $CONFIG: what the kernel command line names (a unit in the
            // ephemeral OS starts the agent with no arguments).
            _ => docs.extend(crate::fetch_config::from_cmdline().kind(Kind::Config)?),
        }
    }
    for c in &global.config {
        docs.push(read(c)?);
    }
    for s in &global.set {
        docs.push(set_document(s).kind(Kind::Config)?);
    }
    preseed::load::load_documents(docs)
        .map_err(anyhow::Error::from)
        .kind(Kind::Config)
}

/// One `-c` argument: a path, `file://` URL, or an http(s) URL.
fn read(arg: &str) -> anyhow::Result<(String, String)> {
    if arg.starts_with("http://") || arg.starts_with("https://") {
        return fetch_url(arg).map(|text| (arg.to_string(), text));
    }
    let path = arg.strip_prefix("file://").unwrap_or(arg);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {path}"))
        .kind(Kind::Config)?;
    Ok((arg.to_string(), text))
}

/// A config served over HTTP(S), with retries ([`crate::fetch_config::fetch`]); signed with
/// the MAAS node credentials when the kernel command line's preseed gave them.
pub fn fetch_url(url: &str) -> anyhow::Result<String> {
    let creds = crate::fetch_config::cmdline_creds();
    crate::fetch_config::fetch(url, creds.as_ref()).kind(Kind::Config)
}

/// `--set key/sub=value` (value is a string) or `--set json:key/sub=<json>`;
/// `--set json:={...}` merges a whole document, as curtin's `merge_cmdarg`.
fn set_document(arg: &str) -> anyhow::Result<(String, String)> {
    let (key, raw) = arg.split_once('=').ok_or_else(|| {
        anyhow!(
            "--set {arg}: expected KEY=VALUE (key path with '/', e.g. install/unmount=disabled)"
        )
    })?;
    let (key, value) = match key.strip_prefix("json:") {
        Some(k) => {
            let v: serde_json::Value = serde_json::from_str(raw)
                .with_context(|| format!("--set {arg}: the value is not JSON"))?;
            (k, yaml_serde::to_value(v)?)
        }
        None => (key, Value::String(raw.to_string())),
    };
    let mut doc = value;
    for part in key.split('/').filter(|p| !p.is_empty()).rev() {
        let mut m = yaml_serde::Mapping::new();
        m.insert(Value::String(part.to_string()), doc);
        doc = Value::Mapping(m);
    }
    if !doc.is_mapping() {
        anyhow::bail!("--set {arg}: a whole-document value must be a JSON object");
    }
    Ok((format!("--set {arg}"), preseed::yaml::to_string(&doc)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(config: &[&str], set: &[&str]) -> Global {
        Global {
            config: config.iter().map(|s| s.to_string()).collect(),
            set: set.iter().map(|s| s.to_string()).collect(),
            ..Global::default()
        }
    }

    #[test]
    fn set_paths_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(
            &f,
            "install: {unmount: disabled, log_file: /a}\nstages: [early]\n",
        )
        .unwrap();
        let l = load(&global(
            &[f.to_str().unwrap()],
            &[
                "install/log_file=/b",
                "json:stages=[\"late\", \"early\"]",
                "early_commands/cmd1=echo hi",
                "json:={\"verbosity\": 2}",
            ],
        ))
        .unwrap();
        let c = &l.config;
        assert_eq!(c.install.log_file.as_deref(), Some("/b"));
        assert!(c.install.unmount_disabled());
        assert_eq!(c.stages, ["late", "early"]);
        assert_eq!(
            c.commands["early"]["cmd1"].as_ref().unwrap().display(),
            "echo hi"
        );
        assert_eq!(c.verbosity, Some(2));
    }

    #[test]
    fn errors_are_config_kind() {
        let e = load(&global(&["/nonexistent/x.yaml"], &[])).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2);
        assert!(crate::error::render(&e).contains("reading config /nonexistent/x.yaml"));
        std::env::set_var("DEPLOYER_FETCH_BACKOFF_MS", "1");
        let e = load(&global(&["http://127.0.0.1:1/c.yaml"], &[])).unwrap_err();
        assert!(crate::error::render(&e)
            .contains("fetching config http://127.0.0.1:1/c.yaml (after 5 attempts)"));
        assert_eq!(crate::error::exit_code(&e), 2);
        let e = load(&global(&[], &["json:x=[1"])).unwrap_err();
        assert!(crate::error::render(&e).contains("not JSON"));
        assert_eq!(crate::error::exit_code(&e), 2);
    }
}
