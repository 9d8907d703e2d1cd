//! What a plain scalar means to PyYAML's `SafeLoader` (YAML 1.1), the reader curtin and
//! cloud-init use: its implicit resolvers (the patterns below) and its constructors (how the
//! matched text becomes a number, a boolean or null). Quoted and block scalars are strings.

use std::sync::LazyLock;

use regex::Regex;
use yaml_serde::Value;

fn pattern(p: &str) -> Regex {
    Regex::new(&format!("^(?:{p})$")).expect("YAML 1.1 resolver pattern")
}

/// PyYAML's bool: these spellings only (`y`, `n`, `yEs` stay strings).
static BOOL: LazyLock<Regex> = LazyLock::new(|| {
    pattern("yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF")
});
/// `~`, `null` in three spellings, or nothing at all.
static NULL: LazyLock<Regex> = LazyLock::new(|| pattern("~|null|Null|NULL|"));
/// Binary, old-style octal (`0644`), decimal, hex and base 60 (`1:30`), `_` anywhere.
static INT: LazyLock<Regex> = LazyLock::new(|| {
    pattern(concat!(
        r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
        r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+"
    ))
});
/// A dot is required (`1e3` is a string), the exponent has a sign; base 60, inf, nan.
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    pattern(concat!(
        r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    ))
});
/// A date or a date and time: PyYAML makes a `datetime`; kept here as the text.
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    pattern(concat!(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
        r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?",
        r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?"
    ))
});

/// The type PyYAML gives a plain scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implicit {
    Bool,
    Null,
    Int,
    Float,
    Timestamp,
    /// `<<`, a merge key.
    Merge,
    /// `=`, the "value" key (PyYAML's safe loader cannot construct it).
    ValueKey,
    Str,
}

pub fn implicit(s: &str) -> Implicit {
    // PyYAML picks the resolvers by the first character; the patterns do not overlap.
    if s == "<<" {
        Implicit::Merge
    } else if s == "=" {
        Implicit::ValueKey
    } else if BOOL.is_match(s) {
        Implicit::Bool
    } else if NULL.is_match(s) {
        Implicit::Null
    } else if INT.is_match(s) {
        Implicit::Int
    } else if FLOAT.is_match(s) {
        Implicit::Float
    } else if TIMESTAMP.is_match(s) {
        Implicit::Timestamp
    } else {
        Implicit::Str
    }
}

/// A plain scalar as PyYAML constructs it.
pub fn plain(s: &str) -> Value {
    match implicit(s) {
        Implicit::Bool => Value::Bool(
            matches!(s.as_bytes()[0], b'y' | b'Y' | b't' | b'T') || s.eq_ignore_ascii_case("on"),
        ),
        Implicit::Null => Value::Null,
        Implicit::Int => int(s).unwrap_or_else(|| Value::String(s.into())),
        Implicit::Float => float(s).unwrap_or_else(|| Value::String(s.into())),
        _ => Value::String(s.into()),
    }
}

/// `construct_yaml_int`: `_` dropped, then by prefix. Past 64 bits it becomes a float (PyYAML
/// has big integers; no config key takes one).
pub fn int(s: &str) -> Option<Value> {
    let t: String = s.chars().filter(|c| *c != '_').collect();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, &t[..]),
    };
    let magnitude: u128 = if t == "0" {
        0
    } else if let Some(b) = t.strip_prefix("0b") {
        u128::from_str_radix(b, 2).ok()?
    } else if let Some(h) = t.strip_prefix("0x") {
        u128::from_str_radix(h, 16).ok()?
    } else if let Some(o) = t.strip_prefix('0') {
        u128::from_str_radix(o, 8).ok()?
    } else if t.contains(':') {
        t.split(':').try_fold(0u128, |acc, d| {
            Some(acc.checked_mul(60)? + d.parse::<u128>().ok()?)
        })?
    } else {
        t.parse().ok()?
    };
    Some(if neg {
        match i64::try_from(magnitude) {
            Ok(m) => Value::from(-m),
            Err(_) if magnitude == 1u128 << 63 => Value::from(i64::MIN),
            Err(_) => Value::from(-(magnitude as f64)),
        }
    } else {
        match u64::try_from(magnitude) {
            Ok(m) => Value::from(m),
            Err(_) => Value::from(magnitude as f64),
        }
    })
}

/// `construct_yaml_float`: `_` dropped, lower-cased; inf, nan and base 60 by hand.
pub fn float(s: &str) -> Option<Value> {
    let t: String = s
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_lowercase();
    let (sign, t) = match t.as_bytes().first() {
        Some(b'-') => (-1.0, &t[1..]),
        Some(b'+') => (1.0, &t[1..]),
        _ => (1.0, &t[..]),
    };
    let f = if t == ".inf" {
        f64::INFINITY
    } else if t == ".nan" {
        f64::NAN
    } else if t.contains(':') {
        t.split(':')
            .try_fold(0.0f64, |acc, d| Some(acc * 60.0 + d.parse::<f64>().ok()?))?
    } else {
        // Rust's parser wants a digit on each side of the dot.
        let t = t.replace(".e", ".0e");
        let t = if t.ends_with('.') { format!("{t}0") } else { t };
        let t = if t.starts_with('.') {
            format!("0{t}")
        } else {
            t
        };
        t.parse::<f64>().ok()?
    };
    Some(Value::from(sign * f))
}

/// `construct_yaml_bool` for an explicit `!!bool` (the same spellings, any case).
pub fn bool_of(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Some(true),
        "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        plain(s)
    }

    #[test]
    fn booleans_are_pyyamls_spellings() {
        for t in [
            "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
        ] {
            assert_eq!(v(t), Value::Bool(true), "{t}");
        }
        for f in [
            "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
        ] {
            assert_eq!(v(f), Value::Bool(false), "{f}");
        }
        // PyYAML does not take the spec's y/n, nor mixed case.
        for s in ["y", "n", "Y", "N", "yEs", "oN", "nO"] {
            assert_eq!(v(s), Value::String(s.into()), "{s}");
        }
    }

    #[test]
    fn numbers_and_nulls_as_pyyaml_builds_them() {
        assert_eq!(v("0644"), Value::from(420u64)); // old-style octal
        assert_eq!(v("0x1F"), Value::from(31u64));
        assert_eq!(v("0b101"), Value::from(5u64));
        assert_eq!(v("1_000"), Value::from(1000u64));
        assert_eq!(v("1:30"), Value::from(90u64)); // base 60
        assert_eq!(v("-12"), Value::from(-12i64));
        assert_eq!(v("+7"), Value::from(7u64));
        assert_eq!(v("0"), Value::from(0u64));
        assert_eq!(v("1.5"), Value::from(1.5));
        assert_eq!(v("1."), Value::from(1.0));
        assert_eq!(v("1.e+3"), Value::from(1000.0));
        assert_eq!(v(".5"), Value::from(0.5));
        assert_eq!(v("-.inf"), Value::from(f64::NEG_INFINITY));
        assert_eq!(v("1:30.5"), Value::from(90.5));
        assert!(v(".NaN").as_f64().unwrap().is_nan());
        // Strings to PyYAML: no dot, unsigned exponent, 09 (not octal), a version.
        for s in ["1e3", "1.0e3", "09", "1.2.3", "0x", "12:30:"] {
            assert_eq!(v(s), Value::String(s.into()), "{s}");
        }
        for s in ["~", "null", "Null", "NULL", ""] {
            assert_eq!(v(s), Value::Null, "{s}");
        }
        assert_eq!(v("nULL"), Value::String("nULL".into()));
        assert_eq!(v("2024-01-02"), Value::String("2024-01-02".into()));
        assert_eq!(implicit("2024-01-02"), Implicit::Timestamp);
    }
}
