//! Resource amounts: Kubernetes quantities (`500m`, `2`, `64Mi`, `1G`,
//! `129e6`) as whole millicores and bytes.

/// cpu, memory and a pod count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Pods.
    pub pods: i64,
}

impl Resources {
    /// The sum.
    pub fn plus(&self, other: &Resources) -> Resources {
        Resources {
            cpu: self.cpu + other.cpu,
            memory: self.memory + other.memory,
            pods: self.pods + other.pods,
        }
    }

    /// The difference.
    pub fn minus(&self, other: &Resources) -> Resources {
        Resources {
            cpu: self.cpu - other.cpu,
            memory: self.memory - other.memory,
            pods: self.pods - other.pods,
        }
    }

    /// The larger of each.
    pub fn max(&self, other: &Resources) -> Resources {
        Resources {
            cpu: self.cpu.max(other.cpu),
            memory: self.memory.max(other.memory),
            pods: self.pods.max(other.pods),
        }
    }
}

/// A quantity's value times `scale`, rounded up (as upstream rounds
/// requests): `quantity("500m", 1000) == 500`.
fn quantity(text: &str, scale: f64) -> Option<i64> {
    let text = text.trim();
    let suffixes: [(&str, f64); 14] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    let (number, multiplier) = suffixes
        .iter()
        .find_map(|(suffix, m)| text.strip_suffix(suffix).map(|n| (n, *m)))
        .unwrap_or((text, 1.0));
    let value: f64 = number.parse().ok()?;
    let scaled = (value * multiplier * scale).ceil();
    (scaled.is_finite() && scaled >= 0.0).then_some(scaled as i64)
}

/// A cpu quantity in millicores.
pub fn cpu_millis(text: &str) -> Option<i64> {
    quantity(text, 1000.0)
}

/// A memory quantity in bytes.
pub fn memory_bytes(text: &str) -> Option<i64> {
    quantity(text, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis("500m"), Some(500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("0.25"), Some(250));
        assert_eq!(cpu_millis("1000"), Some(1_000_000));
        assert_eq!(memory_bytes("64Mi"), Some(64 << 20));
        assert_eq!(memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(memory_bytes("129e6"), Some(129_000_000));
        assert_eq!(memory_bytes("32Gi"), Some(32 << 30));
        assert_eq!(memory_bytes("lots"), None);
        assert_eq!(memory_bytes("-1"), None);
    }
}
