//! Resource quantities (`500m`, `1Gi`, `2e3`), parsed, compared and printed
//! in canonical form as apimachinery's `resource.Quantity` does, so that
//! `requests.cpu: 2000m` against `limits.cpu: 1` reads "must be less than
//! or equal to cpu limit of 1", as upstream words it.

use std::cmp::Ordering;
use std::fmt;

/// Upstream's message for text that is not a quantity at all.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// Upstream's message for a quantity with an unknown suffix.
pub const SUFFIX_ERROR: &str = "unable to parse quantity's suffix";

const NANO: i128 = 1_000_000_000;
const BINARY: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
const DECIMAL: [(&str, i32); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// How a quantity was written, which is how it prints back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, ...: powers of 1024.
    BinarySi,
    /// `m`, `k`, `M`, ... or no suffix: powers of 1000.
    DecimalSi,
    /// `1e3`.
    DecimalExponent,
}

/// A parsed quantity: its value in billionths (upstream rounds anything
/// finer up to the nano) and its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

fn pow(base: i128, exponent: u32) -> Option<i128> {
    base.checked_pow(exponent)
}

impl Quantity {
    /// Parses `text` as upstream's `ParseQuantity`; the error is upstream's
    /// message.
    pub fn parse(text: &str) -> Result<Quantity, &'static str> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if number.is_empty() || !digits_ok(fraction) || (whole.is_empty() && fraction.is_empty()) {
            return Err(FORMAT_ERROR);
        }
        let letters_end = suffix
            .find(|c: char| !"eEinumkKMGTP".contains(c))
            .unwrap_or(suffix.len());
        let (letters, exponent) = suffix.split_at(letters_end);
        let exponent_digits = exponent.strip_prefix(['-', '+']).unwrap_or(exponent);
        if !digits_ok(exponent_digits) {
            return Err(FORMAT_ERROR);
        }
        let (format, scale, binary) =
            if let Some(power) = BINARY.iter().position(|b| !b.is_empty() && *b == suffix) {
                (Format::BinarySi, 0, power as u32)
            } else if let Some((_, scale)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
                (Format::DecimalSi, *scale, 0)
            } else if matches!(letters, "e" | "E") && !exponent_digits.is_empty() {
                let scale = exponent.parse::<i32>().map_err(|_| SUFFIX_ERROR)?;
                (Format::DecimalExponent, scale, 0)
            } else {
                return Err(SUFFIX_ERROR);
            };
        let mantissa: i128 = format!("{whole}{fraction}")
            .trim_start_matches('0')
            .parse()
            .or_else(|e: std::num::ParseIntError| {
                if e.kind() == &std::num::IntErrorKind::Empty {
                    Ok(0)
                } else {
                    Err(FORMAT_ERROR)
                }
            })?;
        let exponent = scale - fraction.len() as i32 + 9;
        let scaled = pow(1024, binary).and_then(|b| mantissa.checked_mul(b));
        let nanos = match scaled {
            Some(value) if exponent >= 0 => {
                pow(10, exponent as u32).and_then(|p| value.checked_mul(p))
            }
            Some(value) => match pow(10, exponent.unsigned_abs()) {
                Some(divisor) => Some((value + divisor - 1) / divisor),
                None => Some(i128::from(value != 0)),
            },
            None => None,
        }
        .ok_or(FORMAT_ERROR)?;
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// Compares the values, whatever their formats (`1Ki` equals `1024`).
    pub fn cmp_value(&self, other: &Quantity) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The value in thousandths, rounded up (upstream's `MilliValue`).
    pub fn milli_value(&self) -> i128 {
        let per_milli = NANO / 1000;
        self.nanos.div_euclid(per_milli) + i128::from(self.nanos.rem_euclid(per_milli) != 0)
    }

    /// The canonical text (upstream's `String`): `1500m`, `1Gi`, `2k`.
    fn canonical(&self) -> String {
        if self.nanos == 0 {
            return "0".into();
        }
        let mut format = self.format;
        if format == Format::BinarySi && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            format = Format::DecimalSi;
        }
        if format == Format::BinarySi {
            let (mut value, mut power) = (self.nanos / NANO, 0);
            while value % 1024 == 0 && power < BINARY.len() - 1 {
                value /= 1024;
                power += 1;
            }
            return format!("{value}{}", BINARY[power]);
        }
        let (mut mantissa, mut exponent) = (self.nanos, -9i32);
        while mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        match exponent % 3 {
            1 | -2 => {
                mantissa *= 10;
                exponent -= 1;
            }
            2 | -1 => {
                mantissa *= 100;
                exponent -= 2;
            }
            _ => {}
        }
        let suffix = match format {
            Format::DecimalSi => DECIMAL
                .iter()
                .find(|(_, scale)| *scale == exponent)
                .map(|(s, _)| (*s).to_owned()),
            _ => (exponent == 0).then(String::new),
        };
        format!(
            "{mantissa}{}",
            suffix.unwrap_or_else(|| format!("e{exponent}"))
        )
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        Quantity::parse(text).unwrap().to_string()
    }

    #[test]
    fn parses_and_prints_as_upstream() {
        for (text, expected) in [
            ("1", "1"),
            ("2000m", "2"),
            ("1500m", "1500m"),
            ("0.5", "500m"),
            ("1000", "1k"),
            ("100", "100"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Ki", "1536"),
            ("0.5Ki", "512"),
            ("512Ki", "512Ki"),
            ("1e3", "1e3"),
            ("1E6", "1e6"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("123Mi", "123Mi"),
            ("0.0000000001", "1n"),
            ("-1", "-1"),
            ("0", "0"),
            ("0Mi", "0"),
            ("+5", "5"),
            ("5.", "5"),
        ] {
            assert_eq!(canonical(text), expected, "{text}");
        }
    }

    #[test]
    fn refuses_what_upstream_refuses() {
        for text in ["", "abc", "1Gb", "1.2.3", "Mi", ".", "1 Gi", "--1", "1e"] {
            assert!(Quantity::parse(text).is_err(), "{text}");
        }
        assert_eq!(Quantity::parse("1Gb"), Err(FORMAT_ERROR));
        assert_eq!(Quantity::parse("1Mk"), Err(SUFFIX_ERROR));
        assert_eq!(Quantity::parse("x"), Err(FORMAT_ERROR));
    }

    #[test]
    fn compares_by_value() {
        let q = |t| Quantity::parse(t).unwrap();
        assert_eq!(q("2").cmp_value(&q("1")), Ordering::Greater);
        assert_eq!(q("1000m").cmp_value(&q("1")), Ordering::Equal);
        assert_eq!(q("1Ki").cmp_value(&q("1024")), Ordering::Equal);
        assert_eq!(q("1G").cmp_value(&q("1Gi")), Ordering::Less);
        assert!(q("-1").is_negative());
        assert_eq!(q("1500m").milli_value(), 1500);
        assert_eq!(q("1.0001").milli_value(), 1001);
    }
}
