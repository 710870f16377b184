//! What containers use where they have no cgroup ([`super::cgroup`]
//! reads it where they do), read from `/proc`: a container's processes
//! are its session's (the shim makes one per container), their CPU time
//! and resident memory summed. Either way, CPU is reported as a rate
//! over the time since the last reading of the same container (since its
//! start the first time), in nanocores, as metrics-server does over its
//! window.

use std::collections::HashMap;
use std::time::Instant;

/// One process's figures from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Its session.
    pub session: i32,
    /// User and system time, in clock ticks.
    pub ticks: u64,
    /// When it started, in clock ticks since boot.
    pub start: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// Parses a `/proc/PID/stat` line (its command, in parentheses, may hold
/// spaces).
pub fn parse(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields from the state (3rd of the line) on: session 6th, utime 14th,
    // stime 15th, starttime 22nd, rss 24th.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        session: fields.get(6 - 3)?.parse().ok()?,
        ticks: field(14)? + field(15)?,
        start: field(22)?,
        rss_pages: field(24)?,
    })
}

/// Every process's figures, by session.
pub fn sessions() -> HashMap<i32, Vec<Stat>> {
    let mut by_session: HashMap<i32, Vec<Stat>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok();
        if let Some(stat) = stat.as_deref().and_then(parse) {
            by_session.entry(stat.session).or_default().push(stat);
        }
    }
    by_session
}

/// Turns CPU time into rates between readings.
#[derive(Debug, Default)]
pub struct Meter {
    last: HashMap<i32, (Instant, u64)>,
}

fn sysconf(name: nix::unistd::SysconfVar, default: u64) -> u64 {
    nix::unistd::sysconf(name)
        .ok()
        .flatten()
        .map_or(default, |v| v as u64)
}

/// What a session's processes used: CPU time (nanoseconds), resident
/// memory (bytes) and how long they have run (seconds).
pub fn totals(stats: &[Stat]) -> (u64, u64, f64) {
    let hz = sysconf(nix::unistd::SysconfVar::CLK_TCK, 100).max(1);
    let page = sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096);
    let ticks: u64 = stats.iter().map(|s| s.ticks).sum();
    let bytes = stats.iter().map(|s| s.rss_pages).sum::<u64>() * page;
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let started = stats.iter().map(|s| s.start).min().unwrap_or(0) as f64 / hz as f64;
    (
        ticks * (1_000_000_000 / hz),
        bytes,
        (uptime - started).max(0.0),
    )
}

impl Meter {
    /// The CPU rate (nanocores) of the container known by `key` that has
    /// used `cpu` nanoseconds in the `running_for` seconds since it
    /// started: over the time since its last reading, or since its start.
    pub fn rate(&mut self, key: i32, cpu: u64, running_for: f64) -> u64 {
        let now = Instant::now();
        let (since, before) = match self.last.get(&key) {
            Some(&(at, before)) => (now.duration_since(at).as_secs_f64(), before),
            None => (running_for, 0),
        };
        self.last.insert(key, (now, cpu));
        (cpu.saturating_sub(before) as f64 / since.max(0.001)) as u64
    }

    /// Forgets the containers not in `live`.
    pub fn keep(&mut self, live: &[i32]) {
        self.last.retain(|key, _| live.contains(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_spaces_in_the_command() {
        let line = "4242 (skiff builtin) S 1 4242 4242 0 -1 4194560 137 0 0 0 25 7 0 0 20 0 3 0 987654 123456789 845 18446744073709551615";
        assert_eq!(
            parse(line),
            Some(Stat {
                session: 4242,
                ticks: 32,
                start: 987654,
                rss_pages: 845
            })
        );
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn rates_are_taken_between_readings() {
        let mut meter = Meter::default();
        // 0.5 s of CPU in the 2 s since it started: a quarter of a core.
        assert_eq!(meter.rate(7, 500_000_000, 2.0), 250_000_000);
        meter.keep(&[]);
        assert!(meter.last.is_empty());
    }
}
