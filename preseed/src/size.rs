//! curtin's size units (`util.human2bytes`): an integer is bytes; a string is
//! `<number>[K|M|G|T][B]` in powers of 1024, uppercase only, decimals allowed when the result is
//! whole. MAAS sends exact byte counts as `"<N>B"`.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// Parse a size the way curtin does; the error text follows curtin's (`'1kB' is not valid input.`).
pub fn parse_size(s: &str) -> crate::Result<u64> {
    human2bytes(s).map_err(|m| crate::ConfigError::at("", m))
}

/// [`parse_size`] with a plain message as error.
pub fn human2bytes(input: &str) -> Result<u64, String> {
    let invalid = || format!("'{input}' is not valid input.");
    let s = input.trim();
    let s = s.strip_suffix('B').unwrap_or(s);
    let (num, mult) = match s.chars().last() {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        Some('T') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let (neg, digits) = match num.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, num.strip_prefix('+').unwrap_or(num)),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(invalid());
    }
    if neg {
        return Err(format!("'{input}': cannot be negative"));
    }
    // Exact arithmetic: value = (int.frac) * mult, must be a whole number of bytes.
    let frac = frac.trim_end_matches('0');
    let scale = 10u128.checked_pow(frac.len() as u32).ok_or_else(invalid)?;
    let digits = format!("{int}{frac}");
    let whole: u128 = if digits.bytes().all(|b| b == b'0') {
        0
    } else {
        digits
            .parse::<u128>()
            .map_err(|_| format!("'{input}': too large"))?
    };
    let total = whole
        .checked_mul(mult as u128)
        .ok_or_else(|| format!("'{input}': too large"))?;
    if total % scale != 0 {
        return Err(format!(
            "'{input}': resulted in non-integer ({})",
            total as f64 / scale as f64
        ));
    }
    u64::try_from(total / scale).map_err(|_| format!("'{input}': too large"))
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
        if v.fract() != 0.0 || !v.is_finite() || v > u64::MAX as f64 {
            return Err(E::custom(format!("'{v}': resulted in non-integer ({v})")));
        }
        Ok(v as u64)
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
    }

    #[test]
    fn rejected_like_curtin() {
        assert_eq!(h("1kB").unwrap_err(), "'1kB' is not valid input.");
        assert_eq!(h("8GiB").unwrap_err(), "'8GiB' is not valid input.");
        assert_eq!(h("100%").unwrap_err(), "'100%' is not valid input.");
        assert_eq!(h("").unwrap_err(), "'' is not valid input.");
        assert_eq!(h("1g").unwrap_err(), "'1g' is not valid input.");
        assert_eq!(h("-1G").unwrap_err(), "'-1G': cannot be negative");
        assert!(h("1.5B").unwrap_err().contains("non-integer"));
        assert!(h("99999999999T").unwrap_err().contains("too large"));
    }
}
