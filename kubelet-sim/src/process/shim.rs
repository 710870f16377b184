//! The container shim: the process the runtime starts for each container
//! (`skiff container-shim SPEC`), which enters the pod's namespaces and
//! then becomes the container's program, as runc's init does. It runs
//! before any thread is started, as joining a mount namespace needs.
//!
//! A new container joins its pod's network namespace, takes mount and UTS
//! namespaces of its own (mounts propagate in from the node, never out)
//! and a root file system of its own: the node's root file system as the
//! lower layer of an overlay whose upper layer is a tmpfs of the
//! container's run, so that what the container writes stays in it (as in
//! a container's writable layer) and its mounts can go anywhere; with a
//! fresh `/proc` and the node's `/dev` and `/sys`. It sees the pod's
//! `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` and its volumes
//! bound where the pod asks, its hostname, a session of its own (so that a
//! signal reaches the whole container), its working directory (made if
//! missing, as runc does) and user. `join` instead enters a running
//! container's namespaces (exec, probes).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};

/// What to start, and where.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Spec {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// The network namespace to join (a new container).
    pub netns: Option<PathBuf>,
    /// A running container's process whose namespaces to join instead.
    pub join: Option<i32>,
    /// The hostname.
    pub hostname: Option<String>,
    /// Where the container's root is made (an empty directory); None
    /// keeps the node's root.
    pub rootfs: Option<PathBuf>,
    /// Bind mounts: source, target inside the container, read-only.
    pub binds: Vec<(PathBuf, PathBuf, bool)>,
    /// The working directory.
    pub workdir: Option<PathBuf>,
    /// The user and group to run as.
    pub user: Option<(u32, u32)>,
    /// The spec file is for this run only: the shim removes it once read.
    pub once: bool,
    /// The `cgroup.procs` files of the cgroups to join first, so that the
    /// program starts under its limits.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
}

/// Writes `spec` for one run (an exec, a probe) into `dir` under a name
/// of its own; the shim removes it.
pub fn write_once(dir: &std::path::Path, spec: &Spec) -> Result<PathBuf, String> {
    let path = dir.join(format!("run-{:016x}.json", fastrand::u64(..)));
    let spec = Spec {
        once: true,
        ..spec.clone()
    };
    std::fs::write(&path, serde_json::to_vec(&spec).expect("a spec"))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The exit code when the program cannot be started, as runc's.
pub const START_ERROR: i32 = 128;

/// Runs the shim for the spec in the file at `path`; returns only when the
/// program could not be started, with the code to exit with.
pub fn run(path: &str) -> i32 {
    let spec: Spec = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice::<Spec>(&bytes).map_err(|e| e.to_string()))
    {
        Ok(spec) => {
            if spec.once {
                let _ = std::fs::remove_file(path);
            }
            spec
        }
        Err(e) => {
            eprintln!("skiff container-shim: {path}: {e}");
            return START_ERROR;
        }
    };
    let error = match enter(&spec) {
        Ok(()) => exec(&spec),
        Err(e) => e,
    };
    eprintln!("{error}");
    START_ERROR
}

fn enter(spec: &Spec) -> Result<(), String> {
    for procs in &spec.cgroups {
        std::fs::write(procs, std::process::id().to_string())
            .map_err(|e| format!("cannot join the cgroup {}: {e}", procs.display()))?;
    }
    let join = |path: PathBuf, kind: CloneFlags| {
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        setns(file, kind).map_err(|e| format!("cannot join {}: {e}", path.display()))
    };
    if let Some(pid) = spec.join {
        let ns = |name: &str| PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        // The container's root, opened before its mount namespace is
        // joined: setns puts this process at the namespace's first mount
        // (and what is mounted over its `/`), which is the container's
        // root only where the node's root was mounted over `/` of that
        // first mount. Where the node runs chrooted (an initramfs bound
        // at a subdirectory, as the VM's; a chroot), the container's
        // pivot_root left its root mounted further down, and an exec or
        // probe would see the node's files instead of the container's —
        // a readiness file it touched, its resolv.conf. As `nsenter
        // --root`, the target's root is entered after the namespace.
        let root = ns("../root");
        let root_dir =
            std::fs::File::open(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        join(ns("net"), CloneFlags::CLONE_NEWNET)?;
        join(ns("uts"), CloneFlags::CLONE_NEWUTS)?;
        join(ns("mnt"), CloneFlags::CLONE_NEWNS)?;
        nix::unistd::fchdir(&root_dir)
            .and_then(|()| nix::unistd::chroot("."))
            .and_then(|()| nix::unistd::chdir("/"))
            .map_err(|e| format!("cannot enter the container's root: {e}"))?;
    } else {
        if let Some(netns) = &spec.netns {
            join(netns.clone(), CloneFlags::CLONE_NEWNET)?;
        }
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)
            .map_err(|e| format!("cannot make the container's namespaces: {e}"))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .map_err(|e| format!("cannot make the container's mounts private: {e}"))?;
        if let Some(hostname) = &spec.hostname {
            nix::unistd::sethostname(hostname)
                .map_err(|e| format!("cannot set the hostname {hostname:?}: {e}"))?;
        }
        match &spec.rootfs {
            Some(dir) => root(dir, spec)?,
            None => {
                for (source, target, read_only) in &spec.binds {
                    bind(source, target, *read_only)?;
                }
            }
        }
    }
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    Ok(())
}

fn mounted(
    source: Option<&str>,
    target: &std::path::Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(source, target, fstype, flags, data).map_err(|e| {
        format!(
            "cannot mount {} at {}: {e}",
            source.unwrap_or("-"),
            target.display()
        )
    })
}

/// Makes the container's root in `dir` (see the module's words), with its
/// binds, and moves into it.
fn root(dir: &std::path::Path, spec: &Spec) -> Result<(), String> {
    let made = |path: &std::path::Path| {
        std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))
    };
    mounted(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )?;
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    for path in [&upper, &work, &merged] {
        made(path)?;
    }
    let layers = format!(
        "lowerdir=/,upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    mounted(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(&layers),
    )?;
    mounted(
        Some("proc"),
        &merged.join("proc"),
        Some("proc"),
        MsFlags::empty(),
        None,
    )?;
    for system in ["dev", "sys"] {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
        mounted(
            Some(&format!("/{system}")),
            &merged.join(system),
            None,
            flags,
            None,
        )?;
    }
    let inside = |target: &std::path::Path| within(&merged, target);
    let mut binds = spec.binds.clone();
    // A program outside the node's root file system (another mount) is
    // bound in where it is.
    if let Some(program) = spec.argv.first().map(PathBuf::from) {
        if program.is_absolute() && !inside(&program).exists() && program.exists() {
            binds.push((program.clone(), program, true));
        }
    }
    for (source, target, read_only) in &binds {
        // A symlink on the way (a resolv.conf into /run, say) leads to
        // where it points inside the container.
        let target = inside(target);
        if source.is_dir() {
            made(&target)?;
        } else if !target.exists() {
            if let Some(parent) = target.parent() {
                made(parent)?;
            }
            std::fs::write(&target, b"").map_err(|e| format!("{}: {e}", target.display()))?;
        }
        bind(source, &target, *read_only)?;
    }
    let old = merged.join(".skiff-old-root");
    made(&old)?;
    nix::unistd::pivot_root(&merged, &old).map_err(|e| format!("pivot_root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    nix::mount::umount2("/.skiff-old-root", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("cannot leave the node's root: {e}"))?;
    let _ = std::fs::remove_dir("/.skiff-old-root");
    Ok(())
}

/// Where `path`, as the container sees it, is under its root `root`:
/// symbolic links on the way are followed inside the root, never out of
/// it (an image's `/var/run -> /run` leads to the container's `/run`, not
/// the node's), as runc's securejoin does. What does not exist yet is
/// taken as it is.
pub fn within(root: &std::path::Path, path: &std::path::Path) -> PathBuf {
    // The parts still to walk, the next one last.
    let parts = |path: &std::path::Path| {
        let mut parts: Vec<std::ffi::OsString> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(part) => Some(part.to_owned()),
                std::path::Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect();
        parts.reverse();
        parts
    };
    let mut pending = parts(path);
    let mut at = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&part);
        match std::fs::read_link(root.join(&next)) {
            Ok(target) if links < 40 => {
                links += 1;
                if target.is_absolute() {
                    at = PathBuf::new();
                }
                pending.extend(parts(&target));
            }
            _ => at = next,
        }
    }
    root.join(at)
}

fn bind(source: &std::path::Path, target: &std::path::Path, read_only: bool) -> Result<(), String> {
    let failed = |e: nix::Error| {
        format!(
            "cannot mount {} at {}: {e}",
            source.display(),
            target.display()
        )
    };
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(failed)?;
    if read_only {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(failed)?;
    }
    Ok(())
}

/// Becomes the program; returns why it could not.
fn exec(spec: &Spec) -> String {
    let Some((program, args)) = spec.argv.split_first() else {
        return "the container has no command".into();
    };
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(spec.env.iter().cloned());
    if let Some(dir) = &spec.workdir {
        // Made if missing, as runc does: in a container's own root it
        // lands in the container's layer (an exec's is the container's).
        if spec.rootfs.is_some() {
            let _ = std::fs::create_dir_all(dir);
        }
        if !dir.is_dir() {
            return format!(
                "chdir to cwd ({:?}) set in the container failed: no such directory",
                dir.display().to_string()
            );
        }
        command.current_dir(dir);
    }
    if let Some((uid, gid)) = spec.user {
        command.uid(uid).gid(gid);
    }
    let error = command.exec();
    match error.kind() {
        std::io::ErrorKind::NotFound => {
            format!("exec: \"{program}\": executable file not found in $PATH")
        }
        _ => format!("exec: \"{program}\": {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::within;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_followed_inside_the_root_and_never_out_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        symlink("/run", root.join("var/run")).unwrap();
        symlink("../c", root.join("a/b")).unwrap();
        symlink("../../../../etc", root.join("escape")).unwrap();
        let at = |p: &str| within(root, std::path::Path::new(p));
        assert_eq!(at("/var/run/secrets/x"), root.join("run/secrets/x"));
        assert_eq!(at("/a/b/d"), root.join("c/d"));
        assert_eq!(at("/escape/passwd"), root.join("etc/passwd"));
        assert_eq!(at("/not/yet"), root.join("not/yet"));
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(at("/loop"), root.join("loop"));
    }
}
