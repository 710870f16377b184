//! Reading a container's log as a kubelet serves it, without I/O: the
//! query's options (`follow`, `previous`, `tailLines`, `sinceSeconds`,
//! `sinceTime`, `timestamps`, `limitBytes`), and the CRI log format the
//! process runtime writes (`2026-12-02T10:00:00.123456789Z stdout F text`,
//! `P` for a line that goes on) turned into what the client sees.

use std::collections::HashMap;

/// What a `containerLogs` request asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Keep streaming as the container writes.
    pub follow: bool,
    /// The previous run's log.
    pub previous: bool,
    /// Each line prefixed with its RFC 3339 time.
    pub timestamps: bool,
    /// Only the last this many lines.
    pub tail_lines: Option<usize>,
    /// Only lines written from then on.
    pub since: Option<jiff::Timestamp>,
    /// At most this many bytes in all.
    pub limit_bytes: Option<usize>,
}

impl Options {
    /// The options of a query at `now`; an invalid value is upstream's
    /// 400 message.
    pub fn parse(query: &HashMap<String, String>, now: jiff::Timestamp) -> Result<Self, String> {
        let flag = |name: &str| query.get(name).is_some_and(|v| v == "true" || v == "1");
        let number = |name: &str| -> Result<Option<i64>, String> {
            query
                .get(name)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("{name}: invalid value {v:?}: must be an integer"))
                })
                .transpose()
        };
        let tail_lines = number("tailLines")?;
        let since_seconds = number("sinceSeconds")?;
        let limit_bytes = number("limitBytes")?;
        if tail_lines.is_some_and(|n| n < 0) {
            return Err("tailLines: Invalid value: must be greater than or equal to 0".into());
        }
        if limit_bytes.is_some_and(|n| n < 1) {
            return Err("limitBytes: Invalid value: must be greater than 0".into());
        }
        if since_seconds.is_some_and(|n| n < 1) {
            return Err("sinceSeconds: Invalid value: must be greater than 0".into());
        }
        let since = match (since_seconds, query.get("sinceTime")) {
            (Some(_), Some(_)) => {
                return Err("at most one of sinceTime or sinceSeconds may be specified".into())
            }
            (Some(seconds), None) => Some(now - jiff::SignedDuration::from_secs(seconds)),
            (None, Some(time)) => Some(
                time.parse()
                    .map_err(|_| format!("sinceTime: invalid value {time:?}"))?,
            ),
            (None, None) => None,
        };
        Ok(Options {
            follow: flag("follow"),
            previous: flag("previous"),
            timestamps: flag("timestamps"),
            tail_lines: tail_lines.map(|n| n as usize),
            since,
            limit_bytes: limit_bytes.map(|n| n as usize),
        })
    }
}

/// One line of a CRI log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// As written: RFC 3339 with nanoseconds.
    pub time: &'a str,
    /// Whether the line goes on in the next entry (`P`).
    pub partial: bool,
    /// What the container wrote.
    pub text: &'a [u8],
}

/// Parses a CRI log line (without its newline).
pub fn entry(line: &[u8]) -> Option<Entry<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default();
    Some(Entry {
        time,
        partial: tag == b"P",
        text,
    })
}

impl Entry<'_> {
    /// Whether it was written at or after `since`.
    pub fn after(&self, since: Option<jiff::Timestamp>) -> bool {
        match (since, self.time.parse::<jiff::Timestamp>()) {
            (Some(since), Ok(time)) => time >= since,
            _ => true,
        }
    }

    /// What the client sees of it.
    pub fn render(&self, timestamps: bool, out: &mut Vec<u8>) {
        if timestamps {
            out.extend_from_slice(self.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(self.text);
        if !self.partial {
            out.push(b'\n');
        }
    }
}

/// The part of a whole CRI log the options select, rendered; with it, the
/// length of the input read (whole lines only), where following goes on.
pub fn select(log: &[u8], options: &Options) -> (Vec<u8>, usize) {
    let complete = log.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let entries: Vec<Entry> = log[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(entry)
        .filter(|e| e.after(options.since))
        .collect();
    let skip = match options.tail_lines {
        Some(tail) => entries.len().saturating_sub(tail),
        None => 0,
    };
    let mut out = Vec::new();
    for e in &entries[skip..] {
        e.render(options.timestamps, &mut out);
    }
    if let Some(limit) = options.limit_bytes {
        out.truncate(limit);
    }
    (out, complete)
}

/// The same selection over a plain log (the simulated runtime's
/// synthesized one, whose lines carry no time).
pub fn select_plain(log: &str, options: &Options) -> Vec<u8> {
    let lines: Vec<&str> = log.lines().collect();
    let skip = options
        .tail_lines
        .map_or(0, |tail| lines.len().saturating_sub(tail));
    let mut out: Vec<u8> = lines[skip..]
        .iter()
        .flat_map(|l| l.bytes().chain(std::iter::once(b'\n')))
        .collect();
    if let Some(limit) = options.limit_bytes {
        out.truncate(limit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"2026-12-02T10:00:00.000000001Z stdout F one\n\
2026-12-02T10:00:01.000000000Z stderr F two\n\
2026-12-02T10:00:02.000000000Z stdout P thr\n\
2026-12-02T10:00:02.100000000Z stdout F ee\n\
2026-12-02T10:00:03.000000000Z stdout F fo";

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_log_reads_as_the_container_wrote_it() {
        let (out, read) = select(LOG, &Options::default());
        assert_eq!(out, b"one\ntwo\nthree\n");
        assert_eq!(&LOG[read..], b"2026-12-02T10:00:03.000000000Z stdout F fo");
        let tail = Options {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(select(LOG, &tail).0, b"three\n");
        let stamped = Options {
            timestamps: true,
            limit_bytes: Some(34),
            ..Default::default()
        };
        assert_eq!(
            select(LOG, &stamped).0,
            b"2026-12-02T10:00:00.000000001Z one"
        );
        let since = Options {
            since: Some("2026-12-02T10:00:01Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(select(LOG, &since).0, b"two\nthree\n");
        let plain = Options {
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(select_plain("a\nb\n", &plain), b"b\n");
    }

    #[test]
    fn options_come_from_the_query_with_upstreams_errors() {
        let now: jiff::Timestamp = "2026-12-02T10:00:10Z".parse().unwrap();
        let options = Options::parse(
            &query(&[
                ("follow", "true"),
                ("tailLines", "5"),
                ("sinceSeconds", "10"),
            ]),
            now,
        )
        .unwrap();
        assert!(options.follow && !options.previous);
        assert_eq!(options.tail_lines, Some(5));
        assert_eq!(options.since, Some("2026-12-02T10:00:00Z".parse().unwrap()));
        let error = Options::parse(&query(&[("tailLines", "-1")]), now).unwrap_err();
        assert_eq!(
            error,
            "tailLines: Invalid value: must be greater than or equal to 0"
        );
        assert!(Options::parse(&query(&[("limitBytes", "x")]), now).is_err());
        assert!(Options::parse(
            &query(&[("sinceSeconds", "1"), ("sinceTime", "2026-12-02T10:00:00Z")]),
            now
        )
        .is_err());
    }
}
