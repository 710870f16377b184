//! A VM with IPVS: the node proxy's IPVS mode needs a kernel with IPVS
//! (and dummy links), which neither this machine's nor CI's has, so its
//! tests boot Debian's stock cloud kernel under qemu and run a shell
//! script inside.
//!
//! - The packages (the kernel, `busybox-static`, `ipvsadm` and its
//!   libraries) come from the machine's Debian apt sources with
//!   `apt-get download` and are unpacked with `dpkg-deb -x` into
//!   `target/vm-cache/pkgs/NAME_VERSION/`, once: a file lock
//!   (`target/vm-cache/lock`, held by `flock`) keeps parallel tests from
//!   fetching twice.
//! - The initramfs is written here, as newc cpio (uncompressed: the
//!   kernel unpacks it in a moment, where decompressing 170 MB under TCG
//!   takes seconds). Writing it ourselves needs no `cpio` on the machine
//!   and no staging tree: each entry names its host source and guest path.
//!   It is two archives concatenated, which the kernel reads as one: a
//!   base (busybox and its applets, the modules and their modules.dep, the
//!   host's `ip`, `nft`, `strace`, `kubectl`, `unshare`, `nsenter` and
//!   `ipvsadm` with their libraries, `/init` from `tests/vm/init`), cached
//!   as `target/vm-cache/base-KEY.cpio` under a key of the package
//!   versions and the inputs, and each run's own (the test build's `skiff`,
//!   stripped of its debug info into `target/vm-cache/skiff-KEY`, the
//!   scenario's script and files).
//! - qemu boots it (TCG; KVM with `SKIFF_VM_ACCEL=kvm`) with the serial
//!   console on its standard output; the init prints a marker with the
//!   script's exit code and powers off.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The kernel's metapackage; it depends on the versioned image package.
const KERNEL_METAPACKAGE: &str = "linux-image-cloud-amd64";

/// The other packages the guest takes from Debian: busybox (the shell,
/// `modprobe`, `poweroff`), `ipvsadm`, and the libraries `ipvsadm` links
/// that a machine without it may lack.
const PACKAGES: &[&str] = &[
    "busybox-static",
    "ipvsadm",
    "libnl-3-200",
    "libnl-genl-3-200",
    "libpopt0",
];

/// The host's programs the guest gets, at the same paths, with the
/// libraries `ldd` finds for them. `unshare` and `nsenter` are
/// util-linux's, which the process runtime calls (busybox's differ); the
/// proxy calls `ip`, `nft` and `ss` (iproute2).
const HOST_TOOLS: &[&str] = &["ip", "ss", "nft", "strace", "kubectl", "unshare", "nsenter"];

/// Where the guest finds the host's programs, in this order.
const PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The module trees the guest gets whole (netfilter with nf_tables and
/// IPVS, the bridge), besides single modules; each with its dependencies.
const MODULE_DIRS: &[&str] = &[
    "kernel/net/netfilter",
    "kernel/net/ipv4/netfilter",
    "kernel/net/ipv6/netfilter",
    "kernel/net/bridge",
];

/// Single modules the guest gets, besides the trees.
const MODULES: &[&str] = &["dummy", "veth", "virtio_console", "overlay"];

/// What the init loads before the scenario (the rest of the image's
/// modules load with `modprobe` from the script: `br_netfilter`, for one,
/// changes what bridged traffic goes through, so a scenario asks for it).
/// nf_tables' set backends are built into nf_tables in this kernel.
const PRELOAD: &[&str] = &[
    "nf_conntrack",
    "nf_nat",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_sh",
    "ip_vs_dh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_mh",
    "nf_tables",
    "nft_chain_nat",
    "nft_nat",
    "nft_ct",
    "nft_numgen",
    "nft_hash",
    "nft_limit",
    "nft_reject",
    "nft_reject_inet",
    "nft_reject_ipv4",
    "nft_reject_ipv6",
    "nft_fib",
    "nft_fib_inet",
    "nft_fib_ipv4",
    "nft_fib_ipv6",
    "nft_masq",
    "nft_redir",
    "nft_compat",
    "dummy",
    "veth",
    "bridge",
    // The process runtime's container root filesystems.
    "overlay",
];

/// The guest's init (PID 1).
const INIT: &str = include_str!("../vm/init");

/// Bumped when the base image's layout changes, which its key cannot see.
const FORMAT: u32 = 1;

/// The kernel command line.
const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";

/// Cache entries (base images, stripped binaries, runs' initramfs) not
/// current and older than this are removed.
const STALE: Duration = Duration::from_secs(3600);

/// A kernel and a base initramfs, ready to boot scenarios.
pub struct Vm {
    kernel: PathBuf,
    base: PathBuf,
    skiff: PathBuf,
    runs: PathBuf,
    accel: &'static str,
}

/// What to run in the VM.
pub struct Scenario {
    /// A shell script (busybox `sh`), run as `/scenario/run.sh` with
    /// `/scenario` as its working directory; its exit code is the outcome's.
    pub script: String,
    /// Extra files: host path, guest path. Dynamically linked executables
    /// bring their libraries.
    pub files: Vec<(PathBuf, String)>,
    /// The deadline from starting qemu to the script's end; past it qemu
    /// is killed and the run fails.
    pub timeout: Duration,
}

impl Scenario {
    /// A scenario of `script` alone, with a deadline of 2 minutes.
    pub fn new(script: &str) -> Scenario {
        Scenario {
            script: script.to_owned(),
            files: Vec::new(),
            timeout: Duration::from_secs(120),
        }
    }

    /// Adds the host's file `host` at `guest` in the VM.
    pub fn file(mut self, host: impl Into<PathBuf>, guest: &str) -> Scenario {
        self.files.push((host.into(), guest.to_owned()));
        self
    }

    /// Sets the deadline.
    pub fn timeout(mut self, timeout: Duration) -> Scenario {
        self.timeout = timeout;
        self
    }
}

/// How a scenario ended. Its console is printed when the script failed,
/// and when the test panics while the outcome is alive.
pub struct Outcome {
    /// The script's exit code.
    pub code: i32,
    /// The whole serial console (kernel messages, init, script), without
    /// carriage returns.
    pub console: String,
    /// The script's part of the console.
    pub output: String,
    /// From starting qemu to the init's starting the script.
    pub boot: Duration,
    /// From starting qemu to the script's end.
    pub elapsed: Duration,
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if std::thread::panicking() && self.code == 0 {
            eprintln!("--- the VM's console ---\n{}", self.console);
        }
    }
}

impl Vm {
    /// Fetches (once, cached) and prepares what a VM boots. None, with the
    /// reason printed, when this machine cannot (no qemu, no apt, no
    /// network); in CI (`CI=true`) that is a failure.
    pub fn prepare() -> Option<Vm> {
        match Self::try_prepare() {
            Ok(vm) => Some(vm),
            Err(reason) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "the VM tests cannot run in CI: {reason}"
                );
                eprintln!("SKIPPED: the VM tests cannot run: {reason}");
                None
            }
        }
    }

    fn try_prepare() -> Result<Vm, String> {
        for (tool, version) in [
            ("qemu-system-x86_64", "-version"),
            ("apt-get", "--version"),
            ("apt-cache", "--version"),
            ("dpkg-deb", "--version"),
            ("ldd", "--version"),
            ("objcopy", "--version"),
            ("flock", "--version"),
        ] {
            let found = Command::new(tool)
                .arg(version)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            if !found {
                return Err(format!("{tool} is not on PATH"));
            }
        }
        let cache = cache_dir();
        fs::create_dir_all(cache.join("pkgs")).expect("create the VM cache");
        fs::create_dir_all(cache.join("runs")).expect("create the VM cache");
        let _lock = CacheLock::take(&cache.join("lock"));

        let packages = resolve(&cache)?;
        let kernel_package = packages[0].0.clone();
        let names: Vec<&str> = packages.iter().map(|(n, _)| n.as_str()).collect();
        let trees = fetch(&cache, &packages)?;
        let tree = |name: &str| trees[names.iter().position(|n| *n == name).unwrap()].clone();

        let kernel_tree = tree(&kernel_package);
        let kernel = fs::read_dir(kernel_tree.join("boot"))
            .expect("the kernel package's /boot")
            .filter_map(|e| Some(e.ok()?.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vmlinuz-"))
            })
            .expect("a vmlinuz in the kernel package");

        let mut tools = Vec::new();
        for tool in HOST_TOOLS {
            let path = on_path(tool).ok_or_else(|| format!("{tool} is not on PATH"))?;
            tools.push(path);
        }

        // The base image's key: everything it is made of.
        let mut key = DefaultHasher::new();
        (FORMAT, INIT, PRELOAD, MODULES, MODULE_DIRS, &packages).hash(&mut key);
        for tool in &tools {
            (tool, fingerprint(tool)).hash(&mut key);
        }
        let base = cache.join(format!("base-{:016x}.cpio", key.finish()));
        if !base.exists() {
            let started = Instant::now();
            let archive = base_archive(&trees, &kernel_tree, &tree("busybox-static"), &tools);
            let partial = base.with_extension("partial");
            archive
                .write_to(&partial)
                .expect("write the base initramfs");
            fs::rename(&partial, &base).expect("rename the base initramfs");
            eprintln!("vm: built {} in {:?}", base.display(), started.elapsed());
        }

        let binary = Path::new(env!("CARGO_BIN_EXE_skiff"));
        let mut key = DefaultHasher::new();
        fingerprint(binary).hash(&mut key);
        let skiff = cache.join(format!("skiff-{:016x}", key.finish()));
        if !skiff.exists() {
            let partial = skiff.with_extension("partial");
            let status = Command::new("objcopy")
                .arg("--strip-debug")
                .arg(binary)
                .arg(&partial)
                .status()
                .expect("run objcopy");
            assert!(status.success(), "objcopy --strip-debug skiff failed");
            fs::rename(&partial, &skiff).expect("rename the stripped skiff");
        }

        remove_stale(&cache, &[&base, &skiff]);
        Ok(Vm {
            kernel,
            base,
            skiff,
            runs: cache.join("runs"),
            accel: accel(),
        })
    }

    /// Boots the VM, runs the scenario, and returns how it ended. Fails
    /// (printing the console) when the deadline passes or the VM stops
    /// before the script ends; qemu never outlives the call.
    pub fn run(&self, scenario: &Scenario) -> Outcome {
        let dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&self.runs)
            .expect("a run directory");
        let nonce = format!(
            "{:x}{:x}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let mut archive = Archive::default();
        archive.bytes("etc/skiff-vm/nonce", nonce.as_bytes().to_vec(), 0o644);
        archive.bytes(
            "scenario/run.sh",
            scenario.script.clone().into_bytes(),
            0o755,
        );
        archive.program("usr/local/bin/skiff", &self.skiff, &[]);
        for (host, guest) in &scenario.files {
            if is_elf(host) {
                archive.program(guest, host, &[]);
            } else {
                archive.file(guest, host);
            }
        }
        let initrd = dir.path().join("initrd.cpio");
        {
            let mut out = fs::File::create(&initrd).expect("create the initramfs");
            io::copy(
                &mut fs::File::open(&self.base).expect("open the base initramfs"),
                &mut out,
            )
            .expect("copy the base initramfs");
            let mut out = BufWriter::new(out);
            archive.write(&mut out).expect("write the initramfs");
            out.flush().expect("write the initramfs");
        }

        // Under TCG a plain CPU boots faster than `max` (9.4 -> 6.8 s
        // here: fewer features for the kernel to probe and patch in, and
        // no AVX for TCG to emulate in user space); RDRAND seeds the
        // kernel's random pool at once.
        let cpu = if self.accel == "kvm" {
            "host"
        } else {
            "qemu64,+rdrand"
        };
        let started = Instant::now();
        let deadline = started + scenario.timeout;
        let mut qemu = Qemu(
            Command::new("qemu-system-x86_64")
                .args(["-accel", self.accel, "-cpu", cpu, "-m", "2048", "-smp", "2"])
                .args([
                    "-nodefaults",
                    "-nographic",
                    "-serial",
                    "stdio",
                    "-no-reboot",
                ])
                .arg("-kernel")
                .arg(&self.kernel)
                .arg("-initrd")
                .arg(&initrd)
                .args(["-append", CMDLINE])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start qemu-system-x86_64"),
        );
        let (sender, receiver) = mpsc::channel();
        let mut stdout = qemu.0.stdout.take().expect("qemu's stdout");
        std::thread::spawn(move || {
            let mut buffer = [0; 8192];
            while let Ok(n @ 1..) = stdout.read(&mut buffer) {
                if sender.send(buffer[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut stderr = qemu.0.stderr.take().expect("qemu's stderr");
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });

        let booted_marker = format!("SKIFF-VM-BOOTED {nonce}");
        let exit_marker = format!("SKIFF-VM-EXIT {nonce} ");
        let mut console = Vec::new();
        let mut scanned = 0;
        let mut boot = None;
        let mut end = None;
        let mut timed_out = false;
        while end.is_none() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                timed_out = true;
                break;
            };
            match receiver.recv_timeout(left) {
                Ok(chunk) => console.extend(chunk),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    break;
                }
                // qemu closed its output: it ended.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            // Whole lines not yet looked at.
            while let Some(newline) = console[scanned..].iter().position(|b| *b == b'\n') {
                let line = String::from_utf8_lossy(&console[scanned..scanned + newline]);
                let line = line.trim_end_matches('\r');
                if boot.is_none() && line.contains(&booted_marker) {
                    boot = Some((started.elapsed(), scanned + newline + 1));
                }
                if let Some((_, code)) = line.split_once(&exit_marker) {
                    end = Some((code.trim().parse::<i32>().expect("the exit code"), scanned));
                }
                scanned += newline + 1;
            }
        }
        let elapsed = started.elapsed();
        if end.is_some() {
            // The init powers off after the marker.
            let until = Instant::now() + Duration::from_secs(10);
            while qemu.0.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        drop(qemu);
        let errors = errors.join().unwrap_or_default();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace('\r', "");
        let Some((code, output_end)) = end else {
            panic!(
                "{}\n--- the VM's console ---\n{}\n--- qemu's errors ---\n{errors}",
                if timed_out {
                    format!("the VM scenario did not end within {:?}", scenario.timeout)
                } else {
                    "the VM stopped before the scenario ended".to_owned()
                },
                text(&console)
            );
        };
        let (boot, output_start) = boot.expect("the init's boot marker");
        let outcome = Outcome {
            code,
            console: text(&console),
            output: text(&console[output_start..output_end]),
            boot,
            elapsed,
        };
        if code != 0 {
            eprintln!(
                "the VM scenario exited with {code}\n--- the VM's console ---\n{}",
                outcome.console
            );
        }
        outcome
    }
}

/// qemu, killed when dropped (also when the test panics).
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cache's lock, held by a `flock` process until this is dropped (or
/// this process dies: its standard input closes and it exits).
struct CacheLock(Child);

impl CacheLock {
    fn take(path: &Path) -> CacheLock {
        let mut child = Command::new("flock")
            .args(["-w", "900"])
            .arg(path)
            .args(["-c", "echo locked && exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run flock");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("flock's stdout"))
            .read_line(&mut line)
            .expect("read flock's answer");
        assert_eq!(
            line.trim(),
            "locked",
            "took the VM cache's lock {} within 15 minutes",
            path.display()
        );
        CacheLock(child)
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// `target/vm-cache` (next to the test build's binaries), or
/// `$SKIFF_VM_CACHE`.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SKIFF_VM_CACHE") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_BIN_EXE_skiff"))
        .parent()
        .and_then(Path::parent)
        .expect("the target directory")
        .join("vm-cache")
}

/// `tcg`, or `kvm` when `$SKIFF_VM_ACCEL` says so: KVM is not the default,
/// since where `/dev/kvm` exists in a VM (nested) it may not work (this
/// machine's qemu 7.2 aborts on an MSR it cannot set).
fn accel() -> &'static str {
    match std::env::var("SKIFF_VM_ACCEL").as_deref() {
        Ok("kvm") => "kvm",
        _ => "tcg",
    }
}

/// The packages the guest takes, with their candidate versions: the real
/// kernel package first (the one the metapackage depends on), then
/// [`PACKAGES`]. apt-cache takes over a second a call, so the answer is
/// kept (`versions-KEY`) under a key of the package lists it came from.
fn resolve(cache: &Path) -> Result<Vec<(String, String)>, String> {
    let mut key = DefaultHasher::new();
    (KERNEL_METAPACKAGE, PACKAGES).hash(&mut key);
    let mut lists: Vec<PathBuf> = fs::read_dir("/var/lib/apt/lists")
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_file())
        .collect();
    lists.sort();
    for list in &lists {
        (list, fingerprint(list)).hash(&mut key);
    }
    let saved = cache.join(format!("versions-{:016x}", key.finish()));
    let parse = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    };
    if let Ok(text) = fs::read_to_string(&saved) {
        return Ok(parse(&text));
    }
    let meta = &candidates(&[KERNEL_METAPACKAGE])?[0];
    let kernel = meta
        .depends
        .split([',', '|'])
        .map(|d| d.split_whitespace().next().unwrap_or_default())
        .find(|d| d.starts_with("linux-image-"))
        .ok_or_else(|| {
            format!(
                "{KERNEL_METAPACKAGE} depends on no linux-image: {}",
                meta.depends
            )
        })?
        .to_owned();
    let mut names = vec![kernel.as_str()];
    names.extend(PACKAGES);
    let packages: Vec<(String, String)> = names
        .iter()
        .zip(candidates(&names)?)
        .map(|(name, c)| (name.to_string(), c.version))
        .collect();
    let text: String = packages.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
    fs::write(&saved, text).expect("save the package versions");
    Ok(packages)
}

/// A package's candidate version, as apt-cache shows it.
struct Candidate {
    version: String,
    depends: String,
}

/// The candidates of packages `names`, in their order; the package lists
/// are fetched (apt-get update) when apt does not know one.
fn candidates(names: &[&str]) -> Result<Vec<Candidate>, String> {
    let show = || -> Option<Vec<Candidate>> {
        let output = Command::new("apt-cache")
            .args(["show", "--no-all-versions"])
            .args(names)
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut found = HashMap::new();
        for stanza in text.split("\n\n") {
            let field = |key: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(|v| v.trim().to_owned())
            };
            if let (Some(name), Some(version)) = (field("Package:"), field("Version:")) {
                let depends = field("Depends:").unwrap_or_default();
                found.entry(name).or_insert(Candidate { version, depends });
            }
        }
        names.iter().map(|n| found.remove(*n)).collect()
    };
    if let Some(found) = show() {
        return Ok(found);
    }
    let updated = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .is_ok_and(|s| s.success());
    if !updated {
        return Err(format!("apt-get update failed (looking for {names:?})"));
    }
    show().ok_or_else(|| format!("apt does not know all of {names:?}"))
}

/// The unpacked trees of `packages` (name, version), fetched and unpacked
/// where the cache lacks them.
fn fetch(cache: &Path, packages: &[(String, String)]) -> Result<Vec<PathBuf>, String> {
    let tree = |(name, version): &(String, String)| {
        cache
            .join("pkgs")
            .join(format!("{name}_{}", version.replace(':', "%3a")))
    };
    let missing: Vec<_> = packages.iter().filter(|p| !tree(p).exists()).collect();
    if !missing.is_empty() {
        let download = cache.join(format!("download-{}", std::process::id()));
        let _ = fs::remove_dir_all(&download);
        fs::create_dir_all(&download).expect("a download directory");
        let started = Instant::now();
        let output = Command::new("apt-get")
            .args(["download", "-qq"])
            .args(missing.iter().map(|(n, v)| format!("{n}={v}")))
            .current_dir(&download)
            .output()
            .expect("run apt-get download");
        if !output.status.success() {
            let _ = fs::remove_dir_all(&download);
            return Err(format!(
                "apt-get download failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let debs: Vec<PathBuf> = fs::read_dir(&download)
            .expect("the downloads")
            .filter_map(|e| Some(e.ok()?.path()))
            .collect();
        for package in missing {
            let prefix = format!("{}_", package.0);
            let deb = debs
                .iter()
                .find(|d| {
                    d.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix))
                })
                .unwrap_or_else(|| panic!("apt-get downloaded no {}", package.0));
            let partial = download.join(format!("{}.tree", package.0));
            let status = Command::new("dpkg-deb")
                .arg("-x")
                .arg(deb)
                .arg(&partial)
                .status()
                .expect("run dpkg-deb");
            assert!(status.success(), "dpkg-deb -x {} failed", deb.display());
            fs::rename(&partial, tree(package)).expect("move the unpacked package");
        }
        let _ = fs::remove_dir_all(&download);
        eprintln!("vm: fetched {packages:?} in {:?}", started.elapsed());
    }
    Ok(packages.iter().map(tree).collect())
}

/// The base initramfs: init, busybox, modules, tools and libraries.
fn base_archive(trees: &[PathBuf], kernel: &Path, busybox: &Path, tools: &[PathBuf]) -> Archive {
    let mut archive = Archive::default();
    archive
        .entries
        .insert("dev/console".into(), Entry::CharDevice(5, 1));
    for dir in ["proc", "sys", "dev", "run", "tmp", "root", "var/tmp"] {
        archive.entries.insert(dir.into(), Entry::Dir);
    }
    archive.bytes("init", INIT.as_bytes().to_vec(), 0o755);
    archive.bytes(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        0o644,
    );
    archive.bytes("etc/group", b"root:x:0:\n".to_vec(), 0o644);
    archive.bytes(
        "etc/hosts",
        b"127.0.0.1 localhost skiff-vm\n::1 localhost\n".to_vec(),
        0o644,
    );

    // Libraries unpacked from the packages, for ldd.
    let libraries: Vec<PathBuf> = trees
        .iter()
        .flat_map(|t| {
            [
                t.join("lib/x86_64-linux-gnu"),
                t.join("usr/lib/x86_64-linux-gnu"),
            ]
        })
        .filter(|d| d.is_dir())
        .collect();
    let names: Vec<&str> = tools
        .iter()
        .filter_map(|t| t.file_name()?.to_str())
        .chain(["ipvsadm"])
        .collect();
    for tool in tools {
        archive.program(&tool.to_string_lossy(), tool, &libraries);
    }
    let ipvsadm = trees
        .iter()
        .flat_map(|t| [t.join("sbin/ipvsadm"), t.join("usr/sbin/ipvsadm")])
        .find(|p| p.exists())
        .expect("ipvsadm in its package");
    archive.program("usr/sbin/ipvsadm", &ipvsadm, &libraries);

    // busybox and its applets, where the tools above do not stand.
    let busybox = busybox.join("bin/busybox");
    archive.file("bin/busybox", &busybox);
    let output = Command::new(&busybox)
        .arg("--list-full")
        .output()
        .expect("run busybox --list-full");
    for applet in String::from_utf8_lossy(&output.stdout).lines() {
        let name = applet.rsplit('/').next().unwrap_or_default();
        if applet.contains('/') && !names.contains(&name) && !archive.entries.contains_key(applet) {
            archive.symlink(applet, "/bin/busybox");
        }
    }

    add_modules(&mut archive, kernel);
    archive
}

/// The kernel's modules the guest needs, with their dependencies, laid out
/// under `/lib/modules/VERSION` with the `modules.dep` and `modules.alias`
/// that depmod would write for them (read from each module's `.modinfo`),
/// and the list the init loads.
fn add_modules(archive: &mut Archive, kernel: &Path) {
    let modules = kernel.join("lib/modules");
    let version = fs::read_dir(&modules)
        .expect("the kernel package's modules")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .next()
        .expect("a module tree");
    let root = modules.join(&version);
    // Every module by name (`-` read as `_`, as the kernel does): its path
    // under the version's directory.
    let mut all = HashMap::new();
    let mut walk = vec![root.join("kernel")];
    while let Some(dir) = walk.pop() {
        for entry in fs::read_dir(&dir).expect("a module directory") {
            let path = entry.expect("a module directory's entry").path();
            if path.is_dir() {
                walk.push(path);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                if let Some(stem) = name.strip_suffix(".ko") {
                    let relative = path
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    all.insert(stem.replace('-', "_"), relative);
                }
            }
        }
    }
    let builtin = fs::read_to_string(root.join("modules.builtin")).unwrap_or_default();
    let builtin: BTreeSet<String> = builtin
        .lines()
        .filter_map(|l| Some(l.rsplit('/').next()?.strip_suffix(".ko")?.replace('-', "_")))
        .collect();

    let mut wanted: Vec<String> = all
        .iter()
        .filter(|(_, path)| {
            MODULE_DIRS
                .iter()
                .any(|d| path.starts_with(&format!("{d}/")))
        })
        .map(|(name, _)| name.clone())
        .chain(MODULES.iter().chain(PRELOAD).map(|m| m.to_string()))
        .filter(|m| !builtin.contains(m))
        .collect();
    wanted.sort();
    // Post-order: a module after its dependencies.
    let mut info: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    fn visit(
        name: &str,
        root: &Path,
        all: &HashMap<String, String>,
        info: &mut BTreeMap<String, Vec<(String, String)>>,
        order: &mut Vec<String>,
    ) {
        if info.contains_key(name) {
            return;
        }
        let path = all
            .get(name)
            .unwrap_or_else(|| panic!("no kernel module {name}"));
        let fields = modinfo(&fs::read(root.join(path)).expect("read a module"));
        info.insert(name.to_owned(), fields.clone());
        for (key, value) in &fields {
            if key == "depends" {
                for dependency in value.split(',').filter(|d| !d.is_empty()) {
                    visit(&dependency.replace('-', "_"), root, all, info, order);
                }
            }
        }
        order.push(name.to_owned());
    }
    for name in &wanted {
        visit(name, &root, &all, &mut info, &mut order);
    }
    let rank: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let depends = |name: &str| -> Vec<&str> {
        info[name]
            .iter()
            .filter(|(k, _)| k == "depends")
            .flat_map(|(_, v)| v.split(',').filter(|d| !d.is_empty()))
            .collect()
    };
    let mut dep = String::new();
    let mut alias = String::new();
    for name in &order {
        // Every module it needs, the ones loaded last first, as depmod
        // writes them (modprobe loads the line from its end).
        let mut closure = BTreeSet::new();
        let mut stack = depends(name);
        while let Some(d) = stack.pop() {
            let d = rank.get_key_value(d.replace('-', "_").as_str()).unwrap().0;
            if closure.insert(*d) {
                stack.extend(depends(d));
            }
        }
        let mut closure: Vec<&str> = closure.into_iter().collect();
        closure.sort_by_key(|d| std::cmp::Reverse(rank[d]));
        let paths: Vec<&str> = closure.iter().map(|d| all[*d].as_str()).collect();
        dep.push_str(&format!("{}: {}\n", all[name], paths.join(" ")));
        for (key, value) in &info[name] {
            if key == "alias" {
                alias.push_str(&format!("alias {value} {name}\n"));
            }
        }
        archive.file(
            &format!("lib/modules/{version}/{}", all[name]),
            &root.join(&all[name]),
        );
    }
    let base = format!("lib/modules/{version}");
    archive.bytes(&format!("{base}/modules.dep"), dep.into_bytes(), 0o644);
    archive.bytes(&format!("{base}/modules.alias"), alias.into_bytes(), 0o644);
    for copied in ["modules.builtin", "modules.order"] {
        if root.join(copied).exists() {
            archive.file(&format!("{base}/{copied}"), &root.join(copied));
        }
    }
    let preload: Vec<&str> = PRELOAD
        .iter()
        .copied()
        .filter(|m| !builtin.contains(*m))
        .collect();
    archive.bytes(
        "etc/skiff-vm/modules",
        (preload.join("\n") + "\n").into_bytes(),
        0o644,
    );
}

/// A kernel module's `.modinfo` fields (key, value), from its ELF
/// section headers.
fn modinfo(elf: &[u8]) -> Vec<(String, String)> {
    assert!(
        elf.starts_with(b"\x7fELF\x02\x01"),
        "a 64-bit little-endian ELF module"
    );
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (offset, size, count, names) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let section = |i: usize| {
        let header = offset + i * size;
        (u32_at(header), u64_at(header + 0x18), u64_at(header + 0x20))
    };
    let (_, names_at, _) = section(names);
    for i in 0..count {
        let (name, at, length) = section(i);
        let name = &elf[names_at + name..];
        let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(0)];
        if name == b".modinfo" {
            return elf[at..at + length]
                .split(|b| *b == 0)
                .filter_map(|field| {
                    let field = std::str::from_utf8(field).ok()?;
                    let (key, value) = field.split_once('=')?;
                    Some((key.to_owned(), value.to_owned()))
                })
                .collect();
        }
    }
    Vec::new()
}

/// `tool`'s path in the guest's PATH order, on this machine.
fn on_path(tool: &str) -> Option<PathBuf> {
    PATH.iter()
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.exists())
}

/// What changes when a file does: its size and modification time.
fn fingerprint(path: &Path) -> (u64, u128) {
    let metadata = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let modified = metadata
        .modified()
        .ok()
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    (metadata.len(), modified)
}

/// Whether `path` is an ELF file.
fn is_elf(path: &Path) -> bool {
    let mut magic = [0; 4];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"\x7fELF"
}

/// Removes the cache's base images, stripped binaries and runs that are
/// neither `current` nor recent (a test of an earlier build may still use
/// its own).
fn remove_stale(cache: &Path, current: &[&Path]) {
    let old = |path: &Path| {
        fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > STALE)
    };
    let entries = fs::read_dir(cache)
        .into_iter()
        .chain(fs::read_dir(cache.join("runs")))
        .flatten()
        .filter_map(|e| Some(e.ok()?.path()));
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let cached = ["base-", "skiff-", "run-"]
            .iter()
            .any(|p| name.starts_with(p));
        if cached && !current.contains(&path.as_path()) && old(&path) {
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
        }
    }
}

/// An entry of an initramfs.
enum Entry {
    Dir,
    /// A host file's contents, with a mode's permission bits.
    File(PathBuf, u32),
    Bytes(Vec<u8>, u32),
    Symlink(String),
    /// A character device: major, minor.
    CharDevice(u32, u32),
}

/// An initramfs being put together: guest paths (without the leading
/// `/`) and what they hold. Parent directories are implied.
#[derive(Default)]
struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    /// The host's file `source` (its contents, following symlinks) at `guest`.
    fn file(&mut self, guest: &str, source: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(source)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()))
            .permissions()
            .mode();
        self.entries.insert(
            guest.trim_start_matches('/').to_owned(),
            Entry::File(source.to_owned(), mode & 0o7777),
        );
    }

    fn bytes(&mut self, guest: &str, data: Vec<u8>, mode: u32) {
        self.entries.insert(
            guest.trim_start_matches('/').to_owned(),
            Entry::Bytes(data, mode),
        );
    }

    fn symlink(&mut self, guest: &str, target: &str) {
        self.entries.insert(
            guest.trim_start_matches('/').to_owned(),
            Entry::Symlink(target.to_owned()),
        );
    }

    /// An executable at `guest` with the shared libraries `ldd` finds for
    /// it (also in `libraries`, directories searched first), each in the
    /// guest's `/lib/x86_64-linux-gnu` (the loader at its own path).
    fn program(&mut self, guest: &str, source: &Path, libraries: &[PathBuf]) {
        self.file(guest, source);
        let search = std::env::join_paths(libraries).expect("library directories");
        let output = Command::new("ldd")
            .arg(source)
            .env("LD_LIBRARY_PATH", search)
            .output()
            .expect("run ldd");
        if !output.status.success() {
            // A static executable.
            return;
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let line = line.trim();
            assert!(
                !line.contains("not found"),
                "{}: a library is missing: {line}",
                source.display()
            );
            let path = match line.split_once("=> ") {
                Some((_, path)) => path,
                None if line.starts_with('/') => line,
                None => continue,
            };
            let path = Path::new(path.split(" (").next().unwrap_or_default());
            let name = path
                .file_name()
                .expect("a library's name")
                .to_string_lossy();
            let guest = if line.starts_with('/') {
                path.to_string_lossy().into_owned()
            } else {
                format!("lib/x86_64-linux-gnu/{name}")
            };
            self.file(&guest, path);
        }
    }

    /// Writes the archive to a new file at `path`.
    fn write_to(&self, path: &Path) -> io::Result<()> {
        let mut out = BufWriter::new(fs::File::create(path)?);
        self.write(&mut out)?;
        out.flush()
    }

    /// Writes the archive (newc cpio, with its trailer): the directories
    /// first, parents before children, then everything else.
    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut dirs = BTreeSet::new();
        for (path, entry) in &self.entries {
            let mut parent = Path::new(path).parent();
            while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
                dirs.insert(dir.to_string_lossy().into_owned());
                parent = dir.parent();
            }
            if let Entry::Dir = entry {
                dirs.insert(path.clone());
            }
        }
        let mut inode = 0;
        let mut header = |out: &mut dyn Write,
                          name: &str,
                          mode: u32,
                          size: usize,
                          rdev: (u32, u32)| {
            inode += 1;
            let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
            write!(
                out,
                "070701{inode:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                0, 0, 0, 0, 0, rdev.0, rdev.1, name.len() + 1, 0
            )?;
            out.write_all(name.as_bytes())?;
            out.write_all(&[0; 4][..1 + pad(110 + name.len() + 1)])
        };
        for dir in &dirs {
            header(out, dir, 0o040755, 0, (0, 0))?;
        }
        for (path, entry) in &self.entries {
            match entry {
                Entry::Dir => {}
                Entry::File(source, mode) => {
                    let mut file = fs::File::open(source)?;
                    let size = file.metadata()?.len() as usize;
                    header(out, path, 0o100000 | mode, size, (0, 0))?;
                    let copied = io::copy(&mut file, out)? as usize;
                    assert_eq!(copied, size, "{} changed while copied", source.display());
                    out.write_all(&[0; 4][..pad(size)])?;
                }
                Entry::Bytes(data, mode) => {
                    header(out, path, 0o100000 | mode, data.len(), (0, 0))?;
                    out.write_all(data)?;
                    out.write_all(&[0; 4][..pad(data.len())])?;
                }
                Entry::Symlink(target) => {
                    header(out, path, 0o120777, target.len(), (0, 0))?;
                    out.write_all(target.as_bytes())?;
                    out.write_all(&[0; 4][..pad(target.len())])?;
                }
                Entry::CharDevice(major, minor) => {
                    header(out, path, 0o020600, 0, (*major, *minor))?;
                }
            }
        }
        header(out, "TRAILER!!!", 0, 0, (0, 0))
    }
}

/// The zero bytes that bring `length` to a multiple of 4.
fn pad(length: usize) -> usize {
    (4 - length % 4) % 4
}

#[test]
fn the_vm_kernel_has_ipvs() {
    let Some(vm) = Vm::prepare() else { return };
    let outcome = vm.run(&Scenario::new(
        "set -e
ipvsadm -A -t 10.96.0.10:80 -s rr -p 10800
ipvsadm -a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1
ipvsadm -Ln
ip link add kube-ipvs0 type dummy
ip -o link show kube-ipvs0
ss -ltnu
",
    ));
    eprintln!(
        "vm: booted in {:?}, the scenario ended after {:?}",
        outcome.boot, outcome.elapsed
    );
    assert_eq!(outcome.code, 0, "the scenario failed");
    assert!(
        outcome
            .output
            .contains("TCP  10.96.0.10:80 rr persistent 10800"),
        "{}",
        outcome.output
    );
    assert!(
        outcome
            .output
            .lines()
            .any(|l| l.contains("-> 10.244.1.5:8080") && l.contains("Masq")),
        "{}",
        outcome.output
    );
    assert!(outcome.output.contains("kube-ipvs0"), "{}", outcome.output);
}

#[test]
fn a_vm_scenario_gets_its_files_and_gives_its_exit_code() {
    let Some(vm) = Vm::prepare() else { return };
    let init = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vm/init");
    let outcome = vm.run(
        &Scenario::new(
            "cmp /scenario/init.copy /init
/opt/env true
skiff --help >/dev/null
echo ran; exit 7
",
        )
        // A host executable, which brings its libraries.
        .file("/usr/bin/env", "/opt/env")
        .file(init, "/scenario/init.copy")
        .timeout(Duration::from_secs(90)),
    );
    assert_eq!(outcome.code, 7, "{}", outcome.output);
    assert_eq!(outcome.output.trim(), "ran");
}

/// The ipvsadm commands recorded for the IPVS codec's tests, in the order
/// they run: a file name and the command. Before `list` the script
/// (untraced) puts back a TCP service with a real server, so that the
/// listing's replies hold two services and a destination.
const RECORDED: &[(&str, &str)] = &[
    (
        "add-service-tcp",
        "ipvsadm -A -t 10.96.0.10:80 -s rr -p 10800",
    ),
    (
        "add-dest",
        "ipvsadm -a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
    ),
    (
        "edit-dest",
        "ipvsadm -e -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 0",
    ),
    ("del-dest", "ipvsadm -d -t 10.96.0.10:80 -r 10.244.1.5:8080"),
    ("del-service", "ipvsadm -D -t 10.96.0.10:80"),
    ("add-service-udp", "ipvsadm -A -u 10.96.0.10:53 -s rr"),
    // The kernel's error reply (no such service).
    ("del-service-missing", "ipvsadm -D -t 10.96.0.99:80"),
    ("list", "ipvsadm -Ln"),
];

/// Regenerates `proxy/src/ipvs/recorded/*.hex`, the IPVS generic netlink
/// messages ipvsadm sends and the kernel's replies, for the codec's tests.
/// Run by hand (it rewrites the directory; commit the result):
///
/// ```text
/// cargo nextest run -p skiff --test e2e --run-ignored only vm::record_ipvsadm_messages
/// ```
///
/// In the VM each of [`RECORDED`] runs under `strace -xx -e
/// trace=sendmsg,recvmsg -e write=all -e read=all`, which hex-dumps every
/// buffer sent and received; here the dumps are cut into netlink messages.
/// Kept: each IPVS request (not the generic netlink controller's family
/// lookup, nor the GET_INFO every ipvsadm command starts with, except in
/// `list`) as `NAME.hex` (`list-N-COMMAND.hex` for the listing's several),
/// and the replies carrying its sequence number as `NAME.reply-N.hex`
/// (recvmsg's MSG_PEEK reads, which libnl makes first, skipped; a dump's
/// messages sorted by their bytes, the end-of-dump last, as the kernel's
/// order follows a hash seed chosen at boot). The
/// sequence number and port id, which libnl takes from the clock and the
/// pid, are zeroed, so that a run writes the same bytes as the last one.
#[test]
#[ignore = "rewrites proxy/src/ipvs/recorded; run by hand"]
fn record_ipvsadm_messages() {
    let Some(vm) = Vm::prepare() else { return };
    let mut script = String::from(
        "record() {
    name=$1; shift
    strace -xx -e trace=sendmsg,sendto,recvmsg,recvfrom -e write=all -e read=all -o /tmp/trace \"$@\"
    echo \"=== trace $name $?\"
    cat /tmp/trace
    echo \"=== end $name\"
}
",
    );
    for (name, command) in RECORDED {
        if *name == "list" {
            script.push_str(&format!("{}\n{}\n", RECORDED[0].1, RECORDED[1].1));
        }
        script.push_str(&format!("record {name} {command}\n"));
    }
    let outcome = vm.run(&Scenario::new(&script));
    assert_eq!(outcome.code, 0, "the recording scenario failed");

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proxy/src/ipvs/recorded");
    fs::create_dir_all(&dir).expect("create the recordings' directory");
    for old in fs::read_dir(&dir).expect("the recordings").flatten() {
        if old.path().extension().is_some_and(|e| e == "hex") {
            fs::remove_file(old.path()).expect("remove an old recording");
        }
    }
    let mut written = 0;
    for (name, command) in RECORDED {
        let start = format!("=== trace {name} ");
        let trace: Vec<&str> = outcome
            .output
            .lines()
            .skip_while(|l| !l.starts_with(&start))
            .take_while(|l| *l != format!("=== end {name}"))
            .collect();
        let code = trace
            .first()
            .and_then(|l| l.strip_prefix(&start))
            .unwrap_or_else(|| panic!("no trace of {name}"));
        assert_eq!(
            code == "0",
            *name != "del-service-missing",
            "{command} exited with {code}"
        );
        let messages = netlink_messages(&trace[1..]);
        let requests: Vec<&(bool, Vec<u8>)> = messages
            .iter()
            .filter(|(sent, m)| *sent && u16_le(m, 4) != GENL_ID_CTRL)
            .filter(|(_, m)| *name == "list" || m[16] != IPVS_CMD_GET_INFO)
            .collect();
        assert!(!requests.is_empty(), "{command} sent no IPVS message");
        assert!(
            *name == "list" || requests.len() == 1,
            "{command} sent {} IPVS messages",
            requests.len()
        );
        for (i, (_, request)) in requests.iter().enumerate() {
            let file = if *name == "list" {
                format!("list-{}-{}", i + 1, ipvs_command(request[16]))
            } else {
                name.to_string()
            };
            let seq = &request[8..16];
            let mut replies: Vec<&Vec<u8>> = messages
                .iter()
                .filter(|(sent, m)| !*sent && &m[8..16] == seq)
                .map(|(_, m)| m)
                .collect();
            // A dump's order follows the kernel's per-boot hash seed.
            replies.sort_by_key(|m| (u16_le(m, 4) == NLMSG_DONE, m.to_vec()));
            write_hex(&dir.join(format!("{file}.hex")), command, "sent", request);
            written += 1;
            for (n, reply) in replies.into_iter().enumerate() {
                let what = format!("reply {} to {}", n + 1, ipvs_command(request[16]));
                write_hex(
                    &dir.join(format!("{file}.reply-{}.hex", n + 1)),
                    command,
                    &what,
                    reply,
                );
                written += 1;
            }
        }
    }
    eprintln!("vm: wrote {written} recordings into {}", dir.display());
}

/// The generic netlink controller's family id (the family lookups).
const GENL_ID_CTRL: u16 = 0x10;

/// Netlink's error (and acknowledgement) and end-of-dump message types.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// IPVS_CMD_GET_INFO, which every ipvsadm command sends first.
const IPVS_CMD_GET_INFO: u8 = 15;

/// An IPVS command's name, as the kernel's `IPVS_CMD_*` has it.
fn ipvs_command(command: u8) -> String {
    let names = [
        "unspec",
        "new-service",
        "set-service",
        "del-service",
        "get-service",
        "new-dest",
        "set-dest",
        "del-dest",
        "get-dest",
        "new-daemon",
        "del-daemon",
        "get-daemon",
        "set-config",
        "get-config",
        "set-info",
        "get-info",
        "zero",
        "flush",
    ];
    names
        .get(command as usize)
        .map_or_else(|| format!("cmd-{command}"), |n| n.to_string())
}

fn u16_le(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// The netlink messages of an strace log (`-xx -e write=all -e
/// read=all`): whether each was sent, and its bytes. A call's hex dump
/// (` | 00000  hh hh … hh  hh … hh  ascii |` lines after it) may hold
/// several messages; MSG_PEEK reads are left out.
fn netlink_messages(trace: &[&str]) -> Vec<(bool, Vec<u8>)> {
    let mut calls: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut current: Option<(bool, Vec<u8>)> = None;
    for line in trace {
        if let Some(dump) = line.strip_prefix(" | ") {
            if let Some((_, bytes)) = current.as_mut() {
                // Offset (5), two spaces, then 16 columns of "hh " with an
                // extra space after the eighth.
                for i in 0..16 {
                    let at = 7 + i * 3 + usize::from(i >= 8);
                    match dump.get(at..at + 2).map(|h| u8::from_str_radix(h, 16)) {
                        Some(Ok(byte)) => bytes.push(byte),
                        _ => break,
                    }
                }
            }
            continue;
        }
        if line.starts_with(" * ") {
            continue;
        }
        calls.extend(current.take());
        let call = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        let sent = call.starts_with("sendmsg(") || call.starts_with("sendto(");
        let received = call.starts_with("recvmsg(") || call.starts_with("recvfrom(");
        if sent || (received && !call.contains("MSG_PEEK")) {
            current = Some((sent, Vec::new()));
        }
    }
    calls.extend(current);
    let mut messages = Vec::new();
    for (sent, bytes) in calls {
        let mut rest = &bytes[..];
        while rest.len() >= 16 {
            let length = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            assert!(
                (16..=rest.len()).contains(&length),
                "a netlink message of {length} bytes in a buffer of {}",
                rest.len()
            );
            messages.push((sent, rest[..length].to_vec()));
            rest = &rest[(length + 3) & !3..];
        }
    }
    messages
}

/// Writes one recorded message as hex, 16 bytes a line, after comment
/// lines: the command, then what the message is. Its sequence number and
/// port id are zeroed (also those of the request an NLMSG_ERROR quotes).
fn write_hex(path: &Path, command: &str, what: &str, message: &[u8]) {
    let mut message = message.to_vec();
    message[8..16].fill(0);
    let kind = match u16_le(&message, 4) {
        NLMSG_ERROR => {
            message[28..36].fill(0);
            "NLMSG_ERROR".to_owned()
        }
        NLMSG_DONE => "NLMSG_DONE".to_owned(),
        family => format!("the IPVS family, id 0x{family:04x} as this kernel assigned it"),
    };
    let mut text =
        format!("# {command}\n# {what}: nlmsg_type {kind}; nlmsg_seq and nlmsg_pid zeroed\n");
    for line in message.chunks(16) {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&hex.join(" "));
        text.push('\n');
    }
    fs::write(path, text).expect("write a recording");
}

/// The Services scenario's scripts, read when the test runs (so that a
/// change to them needs no rebuild): `services.sh`, and the IPVS part it
/// sources, `ipvs.sh`.
fn scenario_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vm")
        .join(name)
}

/// A number the one running a test may set (a deadline a loaded machine
/// needs longer, a benchmark's size): `$variable` when set, else `default`.
fn number_from_env(variable: &str, default: u64) -> u64 {
    std::env::var(variable)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The proxy modes the Services scenario runs, in this order, in one
/// boot: one boot (about 7 s under TCG, and the image's copy) is paid
/// once, and each mode gets a server of its own on a fresh data directory.
const MODES: &[&str] = &["ipvs", "nftables", "userspace"];

/// Runs the Services scenario (`tests/vm/services.sh`) in one VM for each
/// of `modes` in turn, each node's proxy in that mode: WEB and SERVICES
/// of the host's real-pod tests over real pods, traffic through each kind
/// of Service from a pod's namespace; in ipvs mode also `ipvs.sh`'s
/// checks (the listing against ipvsadm, scaling, DNS, readiness and
/// draining). Prints the checks and timings, each with its mode; fails on
/// the first failed check, with the console.
fn services_scenario(modes: &[&str]) {
    let Some(vm) = Vm::prepare() else { return };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        fs::write(&path, text).expect("write a scenario file");
        path
    };
    // Quiet, ipvs mode takes about 100 s and each other mode about 40 s;
    // beside the rest of the suite on 2 cores it takes longer, so the
    // deadline leaves room (`SKIFF_VM_SCENARIO_SECONDS` may raise it);
    // the script's watchdog reports where it stands 20 s before.
    let seconds = number_from_env("SKIFF_VM_SCENARIO_SECONDS", 180 + 90 * modes.len() as u64);
    let watchdog_ms = seconds.saturating_sub(20) * 1000;
    let mut script = String::from(
        "# The uptime (ms) by which every mode must be done; qemu started
# a moment before the kernel's clock.
end=$(( $(awk '{ printf \"%d\", $1 * 1000 }' /proc/uptime) + ",
    );
    script.push_str(&format!("{watchdog_ms} ))\n"));
    for mode in modes {
        script.push_str(&format!(
            "MODE={mode} WATCHDOG_AT=$end sh /scenario/services.sh || exit 1\n"
        ));
    }
    let scenario = Scenario::new(&script)
        .file(scenario_script("services.sh"), "/scenario/services.sh")
        .file(file("web.yaml", crate::realpods::WEB), "/scenario/web.yaml")
        .file(
            file("services.yaml", crate::realpods::SERVICES),
            "/scenario/services.yaml",
        )
        .file(scenario_script("ipvs.sh"), "/scenario/ipvs.sh")
        .file(scenario_script("gated.yaml"), "/scenario/gated.yaml")
        .timeout(Duration::from_secs(seconds));
    let outcome = vm.run(&scenario);
    let mut mode = "";
    for line in outcome.output.lines() {
        if let Some(started) = line.strip_prefix("SCENARIO ") {
            mode = started.split(' ').next().unwrap_or_default();
        }
        if ["OK: ", "TIME: ", "FAIL: ", "STEP ", "SCENARIO "]
            .iter()
            .any(|p| line.starts_with(p))
        {
            eprintln!("vm {mode}: {line}");
        }
    }
    eprintln!(
        "vm: booted in {:?}, the scenario ended after {:?}",
        outcome.boot, outcome.elapsed
    );
    assert_eq!(outcome.code, 0, "the scenario failed");
    for mode in modes {
        assert!(
            outcome.output.contains(&format!("SCENARIO {mode} DONE")),
            "{mode}: {}",
            outcome.output
        );
    }
}

/// The Services of the user's documents carry traffic in every proxy
/// mode inside the VM, one mode after the other in one boot (CI pays for
/// one boot): ipvs through the real kernel's IPVS, nftables and
/// userspace as on the host, but on the stock kernel a user's node runs.
#[test]
fn services_carry_traffic_in_every_mode_in_the_vm() {
    services_scenario(MODES);
}

/// Scenario `proxy-ipvs` of skiff-bench in the VM, whose kernel has IPVS:
/// the IPVS mode's full sync of `SKIFF_BENCH_SERVICES` (default 10,000)
/// Services, `ipvsadm -R` of the same rules beside it, endpoint changes
/// and memory; its JSON line is printed. The binary is
/// `$SKIFF_BENCH_BIN` (default `target/release/skiff-bench`; a debug
/// build works, slower). Under TCG the guest runs several times slower
/// than the machine would: the figures compare with the peer's in the
/// same run, not with bare metal. Run by hand:
///
/// ```text
/// CARGO_TARGET_DIR=/tmp/rel cargo build --release -p skiff-bench
/// SKIFF_BENCH_BIN=/tmp/rel/release/skiff-bench cargo nextest run -p skiff \
///     --test e2e --run-ignored only vm::proxy_ipvs_bench_in_the_vm --no-capture
/// ```
#[test]
#[ignore = "a benchmark: run by hand"]
fn proxy_ipvs_bench_in_the_vm() {
    let Some(vm) = Vm::prepare() else { return };
    let bench = std::env::var_os("SKIFF_BENCH_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/skiff-bench"),
        PathBuf::from,
    );
    assert!(
        bench.exists(),
        "no skiff-bench at {} (build it, or name it in SKIFF_BENCH_BIN)",
        bench.display()
    );
    let services = number_from_env("SKIFF_BENCH_SERVICES", 10_000);
    let outcome = vm.run(
        &Scenario::new(&format!(
            "skiff-bench proxy-ipvs --services {services} >/tmp/figures || exit 1
echo \"FIGURES $(cat /tmp/figures)\"
"
        ))
        .file(bench, "/usr/local/bin/skiff-bench")
        .timeout(Duration::from_secs(number_from_env(
            "SKIFF_VM_SCENARIO_SECONDS",
            900,
        ))),
    );
    assert_eq!(outcome.code, 0, "skiff-bench proxy-ipvs failed");
    let figures = outcome
        .output
        .lines()
        .find_map(|l| l.strip_prefix("FIGURES "))
        .expect("the bench's JSON line");
    eprintln!("vm: booted in {:?}", outcome.boot);
    println!("{figures}");
    let figures: serde_json::Value = serde_json::from_str(figures).expect("JSON figures");
    assert!(
        figures.get("skipped").is_none(),
        "the VM's kernel has IPVS: {figures}"
    );
}
