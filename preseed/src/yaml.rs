//! Writing YAML that curtin, cloud-init and netplan read back as it was meant.
//!
//! serde_yaml writes YAML 1.2, where `52:54:00:12:34:56`, `on` or `2024-01-02` are strings,
//! and so leaves them plain. The readers of what we write speak YAML 1.1 (PyYAML in curtin and
//! cloud-init): to them the first is a base-60 integer, the second a boolean, the third a date,
//! and cloud-init then waits for a NIC whose MAC is 41135085296. Such strings are written
//! single-quoted here, as PyYAML's own dumper does.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_yaml::Value;

/// The implicit scalars of YAML 1.1 (PyYAML's resolver, plus the spec's `y`/`n`): a plain
/// string matching one of these is read back as something else.
static YAML11_NON_STRING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:",
        // bool
        r"y|Y|n|N|yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
        // null, merge key, value key
        r"|~|null|Null|NULL|<<|=",
        // int: binary, old octal, decimal, hex, base 60
        r"|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
        r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
        // float: decimal, base 60, inf, nan
        r"|[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        // timestamp
        r"|[0-9]{4}-[0-9]{2}-[0-9]{2}",
        r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?",
        r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?",
        r")$"
    ))
    .expect("YAML 1.1 resolver patterns")
});

/// Would a YAML 1.1 reader take this plain scalar for something other than a string?
pub fn is_yaml11_non_string(s: &str) -> bool {
    YAML11_NON_STRING.is_match(s)
}

/// `value` as YAML that YAML 1.1 and 1.2 readers both read back unchanged.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_yaml::Error> {
    let mut v = serde_yaml::to_value(value)?;
    // Each string to quote becomes a placeholder token (always written plain), replaced by
    // its quoted form afterwards. The token's prefix is one that no string in the value holds.
    let mut prefix = String::from("__deployer_yaml11_");
    while contains_str(&v, &prefix) {
        prefix.push('x');
    }
    let mut quoted = Vec::new();
    mark(&mut v, &prefix, &mut quoted);
    let out = serde_yaml::to_string(&v)?;
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
        let v: Value = serde_yaml::from_str(
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
        // Read back (as YAML 1.2) to the same value.
        assert_eq!(serde_yaml::from_str::<Value>(&out).unwrap(), v);
    }

    #[test]
    fn a_string_holding_the_token_prefix_is_kept() {
        let v: Value = serde_yaml::from_str("a: __deployer_yaml11_0__\nb: 'yes'\n").unwrap();
        let out = to_string(&v).unwrap();
        assert_eq!(serde_yaml::from_str::<Value>(&out).unwrap(), v);
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
