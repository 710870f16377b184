//! What Go's libraries answer for the values kube-apiserver decodes with
//! them: `encoding/base64`'s `StdEncoding.Decode`, `time.Parse` with the
//! RFC 3339 layouts of `metav1.Time` and `metav1.MicroTime`, and
//! apimachinery's `resource.ParseQuantity`, each with upstream's error.

/// `base64.StdEncoding.Decode`'s error, if `text` is not padded standard
/// base64 (`illegal base64 data at input byte 7`); line breaks are skipped
/// as Go skips them. Follows `decodeQuantum` in encoding/base64/base64.go.
pub fn base64_error(text: &str) -> Option<String> {
    let src = text.as_bytes();
    let corrupt = |at: usize| Some(format!("illegal base64 data at input byte {at}"));
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let newline = |b: u8| b == b'\n' || b == b'\r';
    let mut si = 0;
    while si < src.len() {
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                return match j {
                    0 => None,
                    _ => corrupt(si - j),
                };
            }
            let byte = src[si];
            si += 1;
            if alphabet(byte) {
                j += 1;
                continue;
            }
            if newline(byte) {
                continue;
            }
            if byte != b'=' {
                return corrupt(si - 1);
            }
            // Padding: a quantum of two symbols needs "==", of three "=".
            match j {
                0 | 1 => return corrupt(si - 1),
                2 => {
                    while si < src.len() && newline(src[si]) {
                        si += 1;
                    }
                    if si == src.len() {
                        return corrupt(src.len());
                    }
                    if src[si] != b'=' {
                        return corrupt(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && newline(src[si]) {
                si += 1;
            }
            return match si < src.len() {
                true => corrupt(si),
                false => None,
            };
        }
    }
    None
}

/// `time.Parse(layout, text)`'s error for the RFC 3339 layouts
/// (`2006-01-02T15:04:05Z07:00`, or with `.000000` for MicroTime), as Go's
/// general parser (time/format.go `parse`) words it.
pub fn time_error(text: &str, micro: bool) -> Option<String> {
    let layout = match micro {
        true => "2006-01-02T15:04:05.000000Z07:00",
        false => "2006-01-02T15:04:05Z07:00",
    };
    let cannot = |value: &str, element: &str| {
        Some(format!(
            "parsing time {} as {}: cannot parse {} as {}",
            quote(text),
            quote(layout),
            quote(value),
            quote(element)
        ))
    };
    let message = |message: &str| Some(format!("parsing time {}{message}", quote(text)));
    let digit = |s: &str, i: usize| s.as_bytes().get(i).is_some_and(u8::is_ascii_digit);
    // getnum: one or two digits, two when `fixed`.
    let getnum = |s: &str, fixed: bool| -> Option<(i64, usize)> {
        if !digit(s, 0) {
            return None;
        }
        let first = i64::from(s.as_bytes()[0] - b'0');
        match digit(s, 1) {
            true => Some((first * 10 + i64::from(s.as_bytes()[1] - b'0'), 2)),
            false if fixed => None,
            false => Some((first, 1)),
        }
    };
    let mut value = text;
    // The year.
    if value.len() < 4 || !digit(value, 0) || !value[..4].bytes().all(|b| b.is_ascii_digit()) {
        return cannot(value, "2006");
    }
    let year: i64 = value[..4].parse().unwrap_or_default();
    value = &value[4..];
    let mut fields = [0i64; 5];
    let steps = [
        ('-', "01", true, Some((1, 12, "month"))),
        ('-', "02", true, None),
        ('T', "15", false, Some((0, 23, "hour"))),
        (':', "04", true, Some((0, 59, "minute"))),
        (':', "05", true, Some((0, 59, "second"))),
    ];
    for (i, (separator, element, fixed, range)) in steps.into_iter().enumerate() {
        match value.strip_prefix(separator) {
            Some(rest) => value = rest,
            None => return cannot(value, &separator.to_string()),
        }
        let Some((number, used)) = getnum(value, fixed) else {
            return cannot(value, element);
        };
        value = &value[used..];
        if let Some((low, high, name)) = range {
            if number < low || number > high {
                return message(&format!(": {name} out of range"));
            }
        }
        fields[i] = number;
    }
    let fraction =
        value.len() >= 2 && matches!(value.as_bytes()[0], b'.' | b',') && digit(value, 1);
    if micro {
        if value.len() < 7 || !matches!(value.as_bytes()[0], b'.' | b',') {
            return cannot(value, ".000000");
        }
        if !value[1..7].bytes().all(|b| b.is_ascii_digit()) {
            return cannot(value, ".000000");
        }
        value = &value[7..];
    } else if fraction {
        // A fractional second the layout lacks is accepted.
        let digits = value[1..].bytes().take_while(u8::is_ascii_digit).count();
        value = &value[1 + digits..];
    }
    // The zone: "Z" or ±hh:mm.
    if let Some(rest) = value.strip_prefix('Z') {
        value = rest;
    } else {
        let b = value.as_bytes();
        let zone = b.len() >= 6
            && b[3] == b':'
            && matches!(b[0], b'+' | b'-')
            && getnum(&value[1..3], true).is_some()
            && getnum(&value[4..6], true).is_some();
        if !zone {
            return cannot(value, "Z07:00");
        }
        if value[1..3].parse::<i64>().unwrap_or_default() > 24 {
            return message(": time zone offset hour out of range");
        }
        if value[4..6].parse::<i64>().unwrap_or_default() > 60 {
            return message(": time zone offset minute out of range");
        }
        value = &value[6..];
    }
    if !value.is_empty() {
        return message(&format!(": extra text: {}", quote(value)));
    }
    let (month, day) = (fields[0], fields[1]);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day < 1 || day > days {
        return message(": day out of range");
    }
    None
}

/// Go's time.quote: double quotes, `"` and `\` escaped, other bytes outside
/// printable ASCII as `\xNN`.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if (c as u32) < 0x20 || (c as u32) >= 0x80 {
            let mut buffer = [0; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// `resource.ErrFormatWrong`.
const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// `resource.ParseQuantity`'s error for `text` (already trimmed), following
/// parseQuantityString and the suffixer in apimachinery's
/// pkg/api/resource/quantity.go and suffix.go.
pub fn quantity_error(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        return Some(FORMAT_WRONG);
    }
    let b = text.as_bytes();
    let mut pos = usize::from(matches!(b[0], b'+' | b'-'));
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    pos += digits(pos);
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        pos += digits(pos);
    }
    if pos == b.len() {
        return None;
    }
    let suffix_start = pos;
    pos += b[pos..]
        .iter()
        .take_while(|c| b"eEinumkKMGTP".contains(c))
        .count();
    if pos < b.len() && matches!(b[pos], b'-' | b'+') {
        pos += 1;
    }
    pos += digits(pos);
    if pos < b.len() {
        return Some(FORMAT_WRONG);
    }
    let suffix = &text[suffix_start..];
    let known = matches!(
        suffix,
        "Ki" | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    );
    let exponent = suffix.len() > 1
        && matches!(suffix.as_bytes()[0], b'e' | b'E')
        && suffix[1..].parse::<i64>().is_ok();
    match known || exponent {
        true => None,
        false => Some("unable to parse quantity's suffix"),
    }
}

/// A float64 as Go's encoding/json writes it: like `strconv.FormatFloat(f,
/// 'f', -1, 64)`, in exponent form below 1e-6 and from 1e21 (`1e+21`).
pub fn float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        return match text.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                format!("{mantissa}e+{exponent}")
            }
            _ => text,
        };
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_errors_name_go_s_offsets() {
        assert_eq!(base64_error("aGVsbG8="), None);
        assert_eq!(base64_error("aGVs\nbG8="), None);
        assert_eq!(base64_error(""), None);
        assert_eq!(
            base64_error("not base64!").as_deref(),
            Some("illegal base64 data at input byte 3")
        );
        assert_eq!(
            base64_error("aGVsbG8").as_deref(),
            Some("illegal base64 data at input byte 4")
        );
        assert_eq!(
            base64_error("aGVsbG8=x").as_deref(),
            Some("illegal base64 data at input byte 8")
        );
        assert_eq!(
            base64_error("aGVsbG=").as_deref(),
            Some("illegal base64 data at input byte 7")
        );
        assert_eq!(
            base64_error("abc=====").as_deref(),
            Some("illegal base64 data at input byte 4")
        );
    }

    #[test]
    fn times_parse_as_go_s_rfc3339_layouts() {
        assert_eq!(time_error("2024-02-29T10:00:00Z", false), None);
        assert_eq!(time_error("2024-02-29T10:00:00.5+02:00", false), None);
        assert_eq!(time_error("2024-02-29T10:00:00.123456Z", true), None);
        assert_eq!(
            time_error("yesterday", false).as_deref(),
            Some(
                r#"parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006""#
            )
        );
        assert_eq!(
            time_error("2024-01-01", false).as_deref(),
            Some(
                r#"parsing time "2024-01-01" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "T""#
            )
        );
        assert_eq!(
            time_error("2024-13-01T00:00:00Z", false).as_deref(),
            Some(r#"parsing time "2024-13-01T00:00:00Z": month out of range"#)
        );
        assert_eq!(
            time_error("2023-02-29T00:00:00Z", false).as_deref(),
            Some(r#"parsing time "2023-02-29T00:00:00Z": day out of range"#)
        );
        assert_eq!(
            time_error("2024-01-01T00:00:00Zjunk", false).as_deref(),
            Some(r#"parsing time "2024-01-01T00:00:00Zjunk": extra text: "junk""#)
        );
        assert_eq!(
            time_error("2024-01-01T00:00:00Z", true).as_deref(),
            Some(
                r#"parsing time "2024-01-01T00:00:00Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000""#
            )
        );
    }

    #[test]
    fn quantities_follow_parse_quantity() {
        for good in ["1", "100m", "1.5Gi", "1e3", "-2", ".5", "1E", "0.1Ki"] {
            assert_eq!(quantity_error(good), None, "{good}");
        }
        assert_eq!(quantity_error("lots"), Some(FORMAT_WRONG));
        assert_eq!(quantity_error(""), Some(FORMAT_WRONG));
        assert_eq!(quantity_error("{}"), Some(FORMAT_WRONG));
        assert_eq!(quantity_error("1Qi"), Some(FORMAT_WRONG));
        assert_eq!(
            quantity_error("1iK"),
            Some("unable to parse quantity's suffix")
        );
    }

    #[test]
    fn floats_are_written_as_go_writes_them() {
        assert_eq!(float(1.5), "1.5");
        assert_eq!(float(100.0), "100");
        assert_eq!(float(1e21), "1e+21");
        assert_eq!(float(1.5e-7), "1.5e-7");
    }
}
