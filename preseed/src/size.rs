//! curtin's size units, exactly as `util.human2bytes` reads them: an integer is bytes; a
//! string loses one trailing `B`, then a last `B`, `K`, `M`, `G` or `T` is the unit (powers of
//! 1024, uppercase only) and the rest goes through Python's `float()` (so `5BB`, `1e3M`,
//! `1_000M`, ` 5M` are sizes; `5M ` and `8GiB` are not); the product must be whole. MAAS
//! sends exact byte counts as `"<N>B"`. Every size deployer reads (config, `--size`, the
//! generator's machine documents) goes through here.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// Parse a size the way curtin does; the error text follows curtin's (`'1kB' is not valid input.`).
pub fn parse_size(s: &str) -> crate::Result<u64> {
    human2bytes(s).map_err(|m| crate::ConfigError::at("", m))
}

/// [`parse_size`] with a plain message as error.
pub fn human2bytes(input: &str) -> Result<u64, String> {
    let s = input.strip_suffix('B').unwrap_or(input);
    let (num, mult) = match s.chars().last() {
        Some('B') => (&s[..s.len() - 1], 1u64),
        Some('K') => (&s[..s.len() - 1], 1 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        Some('T') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let num = python_float(num).ok_or_else(|| format!("'{input}' is not valid input."))?;
    if num < 0.0 {
        return Err(format!("'{input}': cannot be negative"));
    }
    // Python multiplies floats; by a power of two that is exact, as here.
    whole(num * mult as f64).map_err(|why| format!("'{input}': {why}"))
}

/// A float that must hold a whole number of bytes (`int(val) != val` in curtin is an error).
fn whole(v: f64) -> Result<u64, String> {
    if v.is_infinite() || v >= 18446744073709551616.0 {
        return Err("too large".into());
    }
    if v.is_nan() || v.fract() != 0.0 {
        return Err(format!("resulted in non-integer ({v})"));
    }
    Ok(v as u64)
}

/// Python's `float(str)`: surrounding whitespace allowed, `_` only between digits, `inf` and
/// `nan` (which no size can be; refused by the caller).
fn python_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let b = t.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'_' {
            let digit = |j: Option<usize>| j.and_then(|j| b.get(j)).is_some_and(u8::is_ascii_digit);
            if !digit(i.checked_sub(1)) || !digit(Some(i + 1)) {
                return None;
            }
        }
    }
    let t: String = t.chars().filter(|c| *c != '_').collect();
    // Rust's grammar is Python's otherwise (digits, one dot, e[+-]N, inf, infinity, nan).
    t.parse::<f64>().ok()
}

/// serde helper: a size field (`size: 8G`, `size: 4194304`, `size: "4194304B"`).
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(SizeVisitor)
}

/// serde helper: an optional size field.
pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            de(d).map(Some)
        }
    }
    d.deserialize_option(Opt)
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size: bytes, or <number>[K|M|G|T][B]")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("'{v}': cannot be negative")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v < 0.0 {
            return Err(E::custom(format!("'{v}': cannot be negative")));
        }
        whole(v).map_err(|why| E::custom(format!("'{v}': {why}")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        human2bytes(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::human2bytes as h;

    #[test]
    fn accepted() {
        assert_eq!(h("1G"), Ok(1 << 30));
        assert_eq!(h("8GB"), Ok(8 << 30));
        assert_eq!(h("512M"), Ok(512 << 20));
        assert_eq!(h("4194304B"), Ok(4194304));
        assert_eq!(h("4194304"), Ok(4194304));
        assert_eq!(h("1.5G"), Ok(3 << 29));
        assert_eq!(h("2T"), Ok(2 << 40));
        assert_eq!(h("100K"), Ok(102400));
        assert_eq!(h("0B"), Ok(0));
        assert_eq!(h("1.0M"), Ok(1 << 20));
        // What Python's float() takes, curtin takes.
        assert_eq!(h("5BB"), Ok(5));
        assert_eq!(h("1e3M"), Ok(1000 << 20));
        assert_eq!(h("1_000M"), Ok(1000 << 20));
        assert_eq!(h(" 5M"), Ok(5 << 20));
        assert_eq!(h("5 M"), Ok(5 << 20));
        assert_eq!(h("+2K"), Ok(2048));
        assert_eq!(h(".5K"), Ok(512));
        assert_eq!(h("-0"), Ok(0));
        assert_eq!(h("513"), Ok(513)); // not whole sectors: the partitioner rounds down
    }

    #[test]
    fn rejected_like_curtin() {
        assert_eq!(h("1kB").unwrap_err(), "'1kB' is not valid input.");
        assert_eq!(h("8GiB").unwrap_err(), "'8GiB' is not valid input.");
        assert_eq!(h("100%").unwrap_err(), "'100%' is not valid input.");
        assert_eq!(h("").unwrap_err(), "'' is not valid input.");
        assert_eq!(h("1g").unwrap_err(), "'1g' is not valid input.");
        assert_eq!(h("5M ").unwrap_err(), "'5M ' is not valid input.");
        assert_eq!(h("1__0M").unwrap_err(), "'1__0M' is not valid input.");
        assert_eq!(h("_1M").unwrap_err(), "'_1M' is not valid input.");
        assert_eq!(h("5BBB").unwrap_err(), "'5BBB' is not valid input.");
        assert_eq!(h("-1G").unwrap_err(), "'-1G': cannot be negative");
        assert_eq!(
            h("1.5B").unwrap_err(),
            "'1.5B': resulted in non-integer (1.5)"
        );
        assert!(h("0.1K").unwrap_err().contains("non-integer"));
        assert!(h("nanM").unwrap_err().contains("non-integer"));
        assert!(h("infG").unwrap_err().contains("too large"));
        assert!(h("99999999999T").unwrap_err().contains("too large"));
    }
}
