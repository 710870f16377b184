//! Resource limits: each pod a cgroup, each container a cgroup in it (as
//! the kubelet's `pod<uid>/<container>`), with the memory and CPU limits
//! of its `resources` and the CPU weight of its requests; what a
//! container uses is read back from its cgroup, and an OOM kill from its
//! counters. Both hierarchies are served: cgroup v2 where its memory and
//! cpu controllers are there (`memory.max`, `cpu.max`, `cpu.weight`,
//! `memory.events`), else v1's memory, cpu and cpuacct hierarchies
//! (`memory.limit_in_bytes`, `cpu.cfs_quota_us`, `cpu.shares`,
//! `memory.oom_control`). Without either, limits are recorded and not
//! enforced.
//!
//! A runtime's cgroups live under one directory per hierarchy named after
//! its root directory (`skiff-<hash>`), so that runtimes beside each other
//! (tests) never touch each other's, and a restart after `kill -9` finds
//! its own.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
use skiff_api::specs::quantity::Quantity;

/// The CFS period the CPU quota is given in, as the kubelet's (100 ms).
const PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel takes (1 ms), as the kubelet's floor.
const MIN_QUOTA_US: u64 = 1_000;

/// The limits of one cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory (None: no limit).
    pub memory: Option<u64>,
    /// Microseconds of CPU per [`PERIOD_US`] (None: no limit).
    pub cpu_quota: Option<u64>,
    /// The CPU shares of the requests (v1's `cpu.shares`; v2's weight is
    /// made from them as upstream does).
    pub shares: u64,
}

fn quantity(
    resources: Option<&ResourceRequirements>,
    which: fn(
        &ResourceRequirements,
    ) -> Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
    name: &str,
) -> Option<i128> {
    let text = &which(resources?)?.get(name)?.0;
    Quantity::parse(text).ok().map(|q| q.milli_value())
}

/// Upstream's shares from a CPU request in millicores: 1024 per core,
/// at least 2.
fn shares(millis: Option<i128>) -> u64 {
    match millis {
        Some(m) if m > 0 => ((m as u64).saturating_mul(1024) / 1000).max(2),
        _ => 2,
    }
}

/// A container's limits from its `resources`.
pub fn limits(resources: Option<&ResourceRequirements>) -> Limits {
    let limit = |name| quantity(resources, |r| r.limits.as_ref(), name);
    let request = |name| quantity(resources, |r| r.requests.as_ref(), name);
    Limits {
        memory: limit("memory").map(|m| (m / 1000).max(0) as u64),
        cpu_quota: limit("cpu").map(|m| ((m.max(0) as u64) * PERIOD_US / 1000).max(MIN_QUOTA_US)),
        // A limit without a request is its request too, as upstream
        // defaults it.
        shares: shares(request("cpu").or(limit("cpu"))),
    }
}

/// A pod's limits: the sum of its containers' where every one has one
/// (else none), and the sum of their shares.
pub fn pod_limits(containers: &[&Container]) -> Limits {
    let each: Vec<Limits> = containers
        .iter()
        .map(|c| limits(c.resources.as_ref()))
        .collect();
    let all =
        |f: fn(&Limits) -> Option<u64>| -> Option<u64> { each.iter().map(f).sum::<Option<u64>>() };
    Limits {
        memory: all(|l| l.memory),
        cpu_quota: all(|l| l.cpu_quota),
        shares: each.iter().map(|l| l.shares).sum::<u64>().max(2),
    }
}

/// Upstream's v2 weight (1..10000) from v1 shares (2..262144).
fn weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Which hierarchy a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// v2's one hierarchy, or v1's memory one.
    Memory,
    /// v2's one hierarchy, or v1's cpu one.
    Cpu,
}

/// The files that set `limits`, and what each gets.
pub fn settings(v2: bool, limits: &Limits) -> Vec<(Controller, &'static str, String)> {
    use Controller::{Cpu, Memory};
    let max = |v: Option<u64>| v.map_or("max".to_string(), |v| v.to_string());
    match v2 {
        true => vec![
            (Memory, "memory.max", max(limits.memory)),
            // One OOM kill takes the whole container, as the kubelet sets.
            (Memory, "memory.oom.group", "1".into()),
            (
                Cpu,
                "cpu.max",
                format!("{} {PERIOD_US}", max(limits.cpu_quota)),
            ),
            (Cpu, "cpu.weight", weight(limits.shares).to_string()),
        ],
        false => vec![
            (
                Memory,
                "memory.limit_in_bytes",
                limits.memory.map_or("-1".into(), |m| m.to_string()),
            ),
            (Cpu, "cpu.cfs_period_us", PERIOD_US.to_string()),
            (
                Cpu,
                "cpu.cfs_quota_us",
                limits.cpu_quota.map_or("-1".into(), |q| q.to_string()),
            ),
            (Cpu, "cpu.shares", limits.shares.to_string()),
        ],
    }
}

/// Where the cgroup hierarchies are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One v2 hierarchy with the memory and cpu controllers.
    V2(PathBuf),
    /// v1's memory, cpu and cpuacct hierarchies (cpu and cpuacct often
    /// one).
    V1 {
        /// The memory hierarchy.
        memory: PathBuf,
        /// The cpu hierarchy.
        cpu: PathBuf,
        /// The cpuacct hierarchy.
        cpuacct: PathBuf,
    },
}

/// The layout `/proc/self/mountinfo` shows; `controllers` reads a v2
/// mount's `cgroup.controllers`.
pub fn layout(mountinfo: &str, controllers: &dyn Fn(&Path) -> String) -> Option<Layout> {
    let mut v1 = (None, None, None);
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(point) = left.split(' ').nth(4).map(PathBuf::from) else {
            continue;
        };
        let mut right = right.split(' ');
        let (fstype, options) = (right.next(), right.nth(1).unwrap_or_default());
        match fstype {
            Some("cgroup2") => {
                let present = controllers(&point);
                let has = |c: &str| present.split_whitespace().any(|p| p == c);
                if has("memory") && has("cpu") {
                    return Some(Layout::V2(point));
                }
            }
            Some("cgroup") => {
                let has = |c: &str| options.split(',').any(|o| o == c);
                if has("memory") {
                    v1.0 = Some(point.clone());
                }
                if has("cpu") {
                    v1.1 = Some(point.clone());
                }
                if has("cpuacct") {
                    v1.2 = Some(point);
                }
            }
            _ => {}
        }
    }
    match v1 {
        (Some(memory), Some(cpu), Some(cpuacct)) => Some(Layout::V1 {
            memory,
            cpu,
            cpuacct,
        }),
        _ => None,
    }
}

/// A stable name for the runtime rooted at `root` (FNV-1a: std's hasher
/// may change between releases, and the name must outlive a build).
pub fn name(root: &Path) -> String {
    let hash = root
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("skiff-{:08x}", hash as u32)
}

/// The value of `key` in a flat-keyed cgroup file (`oom_kill 3`).
pub fn field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// One runtime's cgroups.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
    name: String,
}

/// A container run's cgroup, in each hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    v2: bool,
    memory: PathBuf,
    cpu: PathBuf,
    cpuacct: PathBuf,
}

impl Group {
    /// The `cgroup.procs` files its processes join.
    pub fn procs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![&self.memory, &self.cpu, &self.cpuacct];
        dirs.dedup();
        dirs.into_iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// How many times the kernel's OOM killer struck in it.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.v2 {
            true => "memory.events",
            false => "memory.oom_control",
        };
        let text = std::fs::read_to_string(self.memory.join(file)).unwrap_or_default();
        field(&text, "oom_kill").unwrap_or(0)
    }

    /// The CPU time its processes used (nanoseconds) and their working
    /// set (bytes: usage less inactive file pages, as the kubelet's).
    pub fn usage(&self) -> Option<(u64, u64)> {
        let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).ok();
        let (cpu, usage, inactive) = match self.v2 {
            true => (
                field(&read(&self.cpu, "cpu.stat")?, "usage_usec")?.saturating_mul(1000),
                read(&self.memory, "memory.current")?
                    .trim()
                    .parse::<u64>()
                    .ok()?,
                field(&read(&self.memory, "memory.stat")?, "inactive_file"),
            ),
            false => (
                read(&self.cpuacct, "cpuacct.usage")?.trim().parse().ok()?,
                read(&self.memory, "memory.usage_in_bytes")?
                    .trim()
                    .parse()
                    .ok()?,
                field(&read(&self.memory, "memory.stat")?, "total_inactive_file"),
            ),
        };
        Some((cpu, usage.saturating_sub(inactive.unwrap_or(0))))
    }
}

impl Cgroups {
    /// Where the cgroups of the runtime rooted at `root` are, if this
    /// machine has the hierarchies.
    pub fn find(root: &Path) -> Option<Self> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let read =
            |p: &Path| std::fs::read_to_string(p.join("cgroup.controllers")).unwrap_or_default();
        Some(Cgroups {
            layout: layout(&mountinfo, &read)?,
            name: name(root),
        })
    }

    /// The cgroups of the runtime rooted at `root`, made ready, if this
    /// machine's hierarchies are there and writable.
    pub fn detect(root: &Path) -> Option<Self> {
        let cgroups = Self::find(root)?;
        for dir in cgroups.tops() {
            std::fs::create_dir_all(&dir).ok()?;
        }
        if let Layout::V2(mount) = &cgroups.layout {
            // The controllers reach our cgroups through each parent.
            let _ = std::fs::write(mount.join("cgroup.subtree_control"), "+memory +cpu");
            std::fs::write(
                mount.join(&cgroups.name).join("cgroup.subtree_control"),
                "+memory +cpu",
            )
            .ok()?;
        }
        Some(cgroups)
    }

    /// This runtime's top directory in each hierarchy.
    fn tops(&self) -> Vec<PathBuf> {
        let (memory, cpu, cpuacct) = self.dirs(Path::new(""));
        let mut tops = vec![memory, cpu, cpuacct];
        tops.dedup();
        tops
    }

    fn v2(&self) -> bool {
        matches!(self.layout, Layout::V2(_))
    }

    /// Which hierarchy each kind of file is in, under this runtime's top.
    fn dirs(&self, under: &Path) -> (PathBuf, PathBuf, PathBuf) {
        match &self.layout {
            Layout::V2(mount) => {
                let dir = mount.join(&self.name).join(under);
                (dir.clone(), dir.clone(), dir)
            }
            Layout::V1 {
                memory,
                cpu,
                cpuacct,
            } => (
                memory.join(&self.name).join(under),
                cpu.join(&self.name).join(under),
                cpuacct.join(&self.name).join(under),
            ),
        }
    }

    /// Makes the cgroup `under` (relative to the top) with `limits`.
    fn make(&self, under: &Path, limits: &Limits) -> Result<Group, String> {
        let (memory, cpu, cpuacct) = self.dirs(under);
        for dir in [&memory, &cpu, &cpuacct] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let v2 = self.v2();
        if v2 && under.components().count() == 1 {
            let _ = std::fs::write(memory.join("cgroup.subtree_control"), "+memory +cpu");
        }
        for (controller, file, value) in settings(v2, limits) {
            let dir = match controller {
                Controller::Memory => &memory,
                Controller::Cpu => &cpu,
            };
            // A lower limit than the usage already there can fail: the
            // container's own is what matters.
            if let Err(e) = std::fs::write(dir.join(file), &value) {
                tracing::debug!(file, %value, error = %e, "cannot set a cgroup limit");
            }
        }
        Ok(Group {
            v2,
            memory,
            cpu,
            cpuacct,
        })
    }

    /// Makes (or sets again, for a new run) the cgroup of container
    /// `name` of the pod `uid` (and the pod's with `pod`), with the
    /// container's `limits`.
    pub fn container(
        &self,
        uid: &str,
        pod: &Limits,
        name: &str,
        limits: &Limits,
    ) -> Result<Group, String> {
        let pod_dir = PathBuf::from(format!("pod{uid}"));
        self.make(&pod_dir, pod)?;
        self.make(&pod_dir.join(name), limits)
    }

    /// Removes the pod's cgroups (its processes are gone or going: an
    /// emptied cgroup is removed once its last process has been reaped).
    pub async fn remove_pod(&self, uid: &str) {
        self.remove(&PathBuf::from(format!("pod{uid}"))).await;
    }

    /// Kills what runs in every cgroup of this runtime and removes them
    /// (at shutdown, and after a run killed with `-9`).
    pub async fn cleanup(&self) {
        for top in self.tops() {
            for pid in procs_under(&top) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        self.remove(Path::new("")).await;
    }

    /// Removes the cgroup `under` (the top when empty) and those in it,
    /// deepest first, trying for a while: processes leave a cgroup when
    /// reaped.
    async fn remove(&self, under: &Path) {
        let (memory, cpu, cpuacct) = self.dirs(under);
        let mut dirs = vec![memory, cpu, cpuacct];
        dirs.dedup();
        for dir in dirs {
            let mut all = tree(&dir);
            if all.is_empty() {
                continue;
            }
            all.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for attempt in 0..50 {
                all.retain(|d| std::fs::remove_dir(d).is_err() && d.exists());
                if all.is_empty() {
                    break;
                }
                if attempt == 49 {
                    tracing::warn!(cgroup = %dir.display(), "cannot remove a cgroup");
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// `dir` and every directory under it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![];
    let mut next = vec![dir.to_path_buf()];
    while let Some(d) = next.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            next.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            all.push(d);
        }
    }
    all
}

/// The processes in the cgroups at or under `dir`.
fn procs_under(dir: &Path) -> Vec<i32> {
    tree(dir)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

    fn container(requests: &[(&str, &str)], limits_: &[(&str, &str)]) -> Container {
        let map = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Q(v.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: map(requests),
                limits: map(limits_),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn limits_follow_the_kubelets_arithmetic() {
        let c = container(&[("cpu", "250m")], &[("cpu", "500m"), ("memory", "64Mi")]);
        assert_eq!(
            limits(c.resources.as_ref()),
            Limits {
                memory: Some(64 << 20),
                cpu_quota: Some(50_000),
                shares: 256
            }
        );
        // A tiny limit keeps the kernel's floor; no request: 2 shares.
        let tiny = container(&[], &[("cpu", "1m")]);
        assert_eq!(limits(tiny.resources.as_ref()).cpu_quota, Some(1_000));
        assert_eq!(limits(tiny.resources.as_ref()).shares, 2);
        assert_eq!(
            limits(None),
            Limits {
                shares: 2,
                ..Limits::default()
            }
        );
    }

    #[test]
    fn a_pod_is_limited_only_when_each_container_is() {
        let a = container(&[], &[("memory", "10Mi")]);
        let b = container(&[], &[("memory", "20Mi")]);
        let free = container(&[("cpu", "1")], &[]);
        assert_eq!(pod_limits(&[&a, &b]).memory, Some(30 << 20));
        assert_eq!(pod_limits(&[&a, &free]).memory, None);
        assert_eq!(pod_limits(&[&a, &free]).shares, 1026);
    }

    #[test]
    fn settings_name_each_hierarchys_files() {
        let l = Limits {
            memory: Some(1 << 20),
            cpu_quota: None,
            shares: 1024,
        };
        let v2 = settings(true, &l);
        assert!(v2.contains(&(Controller::Memory, "memory.max", "1048576".into())));
        assert!(v2.contains(&(Controller::Cpu, "cpu.max", "max 100000".into())));
        assert!(v2.contains(&(Controller::Cpu, "cpu.weight", "39".into())));
        let v1 = settings(false, &l);
        assert!(v1.contains(&(
            Controller::Memory,
            "memory.limit_in_bytes",
            "1048576".into()
        )));
        assert!(v1.contains(&(Controller::Cpu, "cpu.cfs_quota_us", "-1".into())));
        assert_eq!(weight(2), 1);
        assert_eq!(weight(262_144), 10_000);
    }

    #[test]
    fn the_layout_is_read_from_mountinfo() {
        let hybrid = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct";
        let none = |_: &Path| String::new();
        let cpu = PathBuf::from("/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(
            layout(hybrid, &none),
            Some(Layout::V1 {
                memory: "/sys/fs/cgroup/memory".into(),
                cpu: cpu.clone(),
                cpuacct: cpu
            })
        );
        let unified = "31 25 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate";
        let all = |_: &Path| "cpuset cpu io memory pids".to_string();
        assert_eq!(
            layout(unified, &all),
            Some(Layout::V2("/sys/fs/cgroup".into()))
        );
        assert_eq!(layout(unified, &none), None);
    }

    #[test]
    fn counters_and_names() {
        let events = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(field(events, "oom_kill"), Some(1));
        assert_eq!(field(events, "oom"), Some(1));
        assert_eq!(field(events, "absent"), None);
        let a = name(Path::new("/var/lib/skiff/runtime"));
        assert_eq!(a, name(Path::new("/var/lib/skiff/runtime")));
        assert_ne!(a, name(Path::new("/tmp/other")));
        assert!(a.starts_with("skiff-") && a.len() == 14);
    }
}
