//! How curtin decides whether a config value means yes. There is no one rule: each key is read
//! with one of three, and the value is what PyYAML made of the text (`no` is `False`, `'no'` a
//! string), so `preserve: 'no'` preserves, as it does in curtin.

use yaml_serde::Value;

/// Python's truthiness, for keys curtin tests with `if value:` (`install.log_file_append`,
/// `grub_device`, `resize`, a stage command, a reporting handler).
pub fn falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        Value::Tagged(t) => falsy(&t.value),
    }
}

/// curtin's `config.value_as_boolean`, for `preserve`, `wipe`, `kernel.install` and the
/// boolean `grub` settings: false for `False`, `None`, `0`, and the strings `0`, `False`,
/// `false`, `None`, `none` and the empty string; everything else (`[]` and `'no'` too) is true.
pub fn value_as_boolean(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        // Python compares 0.0 equal to 0.
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !matches!(s.as_str(), "0" | "False" | "false" | "None" | "none" | ""),
        Value::Tagged(t) => value_as_boolean(&t.value),
        Value::Sequence(_) | Value::Mapping(_) => true,
    }
}

/// `showtrace`: curtin's `str(value).lower() not in ("0", "false")` (so `null` means true).
pub fn showtrace(v: &Value) -> bool {
    let text = match v {
        Value::Null => "none".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Tagged(t) => return showtrace(&t.value),
        other => crate::path::scalar_string(other).unwrap_or_else(|| "[...]".into()),
    };
    !matches!(text.to_lowercase().as_str(), "0" | "false")
}

/// A storage item's `preserve`, `wipe`-like flags and the `grub` settings as serde fields.
pub mod de {
    use serde::Deserialize;
    use yaml_serde::Value;

    /// [`super::value_as_boolean`]; absent is false (`#[serde(default)]`).
    pub fn value_as_boolean<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(super::value_as_boolean(&Value::deserialize(d)?))
    }

    /// Python truthiness ([`super::falsy`]); absent is false.
    pub fn truthy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(!super::falsy(&Value::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        crate::yaml::from_str(s).unwrap()
    }

    #[test]
    fn the_three_readings_on_the_values_users_write() {
        // (text, truthiness, value_as_boolean, showtrace), each as curtin reads it.
        let cases = [
            ("yes", true, true, true),
            ("no", false, false, false),
            ("'no'", true, true, true),
            ("off", false, false, false),
            ("'off'", true, true, true),
            ("n", true, true, true), // PyYAML reads n as a string
            ("0", false, false, false),
            ("'0'", true, false, false),
            ("0.0", false, false, true),
            ("1", true, true, true),
            ("'false'", true, false, false),
            ("'False'", true, false, false),
            ("'FALSE'", true, true, false),
            ("none", true, false, true),
            ("null", false, false, true),
            ("''", false, false, true),
            ("[]", false, true, true),
            ("{}", false, true, true),
            ("superblock", true, true, true),
        ];
        for (text, truthy, vab, trace) in cases {
            let v = y(text);
            assert_eq!(!falsy(&v), truthy, "truthiness of {text}");
            assert_eq!(value_as_boolean(&v), vab, "value_as_boolean({text})");
            assert_eq!(showtrace(&v), trace, "showtrace: {text}");
        }
    }
}
