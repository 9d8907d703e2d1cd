//! Writing YAML that curtin, cloud-init and netplan read back as it was meant.
//!
//! yaml_serde writes YAML 1.2, where `52:54:00:12:34:56`, `on` or `2024-01-02` are strings,
//! and so leaves them plain. The readers of what we write speak YAML 1.1 (PyYAML in curtin and
//! cloud-init): to them the first is a base-60 integer, the second a boolean, the third a date,
//! and cloud-init then waits for a NIC whose MAC is 41135085296. Such strings are written
//! single-quoted here, as PyYAML's own dumper does.

use regex::Regex;
use serde::Serialize;
use yaml_serde::Value;

use super::resolve::Implicit;

/// Would a YAML 1.1 reader take this plain scalar for something other than a string? PyYAML's
/// resolvers, plus the spec's `y`/`n` (other YAML 1.1 readers take them for booleans).
pub fn is_yaml11_non_string(s: &str) -> bool {
    !s.is_empty()
        && (matches!(s, "y" | "Y" | "n" | "N") || super::resolve::implicit(s) != Implicit::Str)
}

/// `value` as YAML that YAML 1.1 and 1.2 readers both read back unchanged.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, yaml_serde::Error> {
    let mut v = yaml_serde::to_value(value)?;
    // Each string to quote becomes a placeholder token (always written plain), replaced by
    // its quoted form afterwards. The token's prefix is one that no string in the value holds.
    let mut prefix = String::from("__deployer_yaml11_");
    while contains_str(&v, &prefix) {
        prefix.push('x');
    }
    let mut quoted = Vec::new();
    mark(&mut v, &prefix, &mut quoted);
    let out = yaml_serde::to_string(&v)?;
    let tokens =
        Regex::new(&format!("{}([0-9]+)__", regex::escape(&prefix))).expect("token pattern");
    let restored = tokens.replace_all(&out, |c: &regex::Captures| {
        let s = &quoted[c[1].parse::<usize>().expect("token number")];
        format!("'{}'", s.replace('\'', "''"))
    });
    Ok(restored.into_owned())
}

fn token(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}__")
}

fn contains_str(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.contains(needle),
        Value::Sequence(items) => items.iter().any(|i| contains_str(i, needle)),
        Value::Mapping(m) => m
            .iter()
            .any(|(k, v)| contains_str(k, needle) || contains_str(v, needle)),
        Value::Tagged(t) => contains_str(&t.value, needle),
        _ => false,
    }
}

fn mark(v: &mut Value, prefix: &str, quoted: &mut Vec<String>) {
    match v {
        Value::String(s) if is_yaml11_non_string(s) => {
            let original = std::mem::replace(s, token(prefix, quoted.len()));
            quoted.push(original);
        }
        Value::Sequence(items) => items.iter_mut().for_each(|i| mark(i, prefix, quoted)),
        Value::Mapping(m) => {
            let old = std::mem::take(m);
            for (mut k, mut val) in old {
                mark(&mut k, prefix, quoted);
                mark(&mut val, prefix, quoted);
                m.insert(k, val);
            }
        }
        Value::Tagged(t) => mark(&mut t.value, prefix, quoted),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_ambiguous_strings_are_quoted() {
        let v: Value = yaml_serde::from_str(
            "mac: '52:54:00:12:34:56'\nother: '52:54:00:ab:cd:ef'\nflag: 'on'\nreal: true\n\
             when: '2024-01-02'\n'n': 'n'\nmode: '0644'\nbin: '0b101'\nnum: 3\n'off': 'it''s'\n\
             list: ['1_000', plain, '12:30']\n",
        )
        .unwrap();
        let out = to_string(&v).unwrap();
        assert_eq!(
            out,
            "mac: '52:54:00:12:34:56'\nother: 52:54:00:ab:cd:ef\nflag: 'on'\nreal: true\n\
             when: '2024-01-02'\n'n': 'n'\nmode: '0644'\nbin: '0b101'\nnum: 3\n'off': it's\n\
             list:\n- '1_000'\n- plain\n- '12:30'\n"
        );
        // Read back to the same value, as YAML 1.2 and as PyYAML.
        assert_eq!(yaml_serde::from_str::<Value>(&out).unwrap(), v);
        assert_eq!(crate::yaml::from_str(&out).unwrap(), v);
    }

    #[test]
    fn a_string_holding_the_token_prefix_is_kept() {
        let v: Value = yaml_serde::from_str("a: __deployer_yaml11_0__\nb: 'yes'\n").unwrap();
        let out = to_string(&v).unwrap();
        assert_eq!(yaml_serde::from_str::<Value>(&out).unwrap(), v);
        assert!(out.contains("b: 'yes'"), "{out}");
    }

    #[test]
    fn the_patterns() {
        for s in [
            "1:20",
            "190:20:30.15",
            "+12",
            ".5",
            "1.5e+3",
            ".inf",
            "2001-12-14t21:59:43.10-05:00",
            "~",
            "=",
            "<<",
            "Off",
        ] {
            assert!(is_yaml11_non_string(s), "{s}");
        }
        for s in [
            "00:11:22:33:44:55",
            "eth0",
            "10.0.2.50/24",
            "1.2.3",
            "fe80::1",
            "yess",
            "0x",
            "v1:2",
            "",
        ] {
            assert!(!is_yaml11_non_string(s), "{s}");
        }
    }
}
