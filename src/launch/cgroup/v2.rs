//! cgroup v2: one directory, `<parent>/minit-<pid>`, holding the limits and every process of
//! the run.
//!
//! A controller works in a cgroup only when every ancestor lists it in
//! `cgroup.subtree_control`, and a non-root cgroup may not both hold processes and enable
//! controllers for its children (the no-internal-process rule). So controllers are enabled
//! top-down, from the root to the parent, and only those the limits need.

use super::{
    Request, Stats, kill_listed, make_dirs, make_run_dir, own_path, parent_path, read_key,
    read_number, read_procs, read_text, remove_dir, under, write,
};
use crate::launch::options::{CPU_PERIOD_US, Limits, SwapLimit};
use crate::logging::error_text;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where minit moves itself when its own cgroup must give up its processes (see
/// `enable_controllers`). Shared by every minit under that cgroup and left in place.
const MONITOR_LEAF: &str = "minit.monitors";

pub struct Group {
    dir: PathBuf,
}

/// The controllers the limits need, in the order they are enabled.
pub fn needed_controllers(limits: &Limits) -> Vec<&'static str> {
    let mut needed = Vec::new();
    if limits.memory.is_some() {
        needed.push("memory");
    }
    if limits.cpu_quota_us.is_some() {
        needed.push("cpu");
    }
    if limits.pids.is_some() {
        needed.push("pids");
    }
    needed
}

impl Group {
    /// Creates the run's cgroup under the hierarchy mounted at `mount` with every limit.
    pub fn create(mount: &Path, req: &Request) -> Result<Group, String> {
        let parent = parent_path(req, "");
        let needed = needed_controllers(req.limits);
        enable_controllers(mount, &parent, &needed, req.self_cgroup)?;
        let dir = under(mount, &parent).join(req.name);
        make_run_dir(&dir)?;
        let group = Group { dir };
        if let Err(err) = group.write_limits(req.limits) {
            group.remove(super::deadline());
            return Err(err);
        }
        Ok(group)
    }

    /// Creates a cgroup with no limits, to track and kill (the v2 tree of a hybrid host).
    pub fn create_tracker(mount: &Path, req: &Request) -> Result<Group, String> {
        let parent = parent_path(req, "");
        let base = under(mount, &parent);
        make_dirs(&base)?;
        let dir = base.join(req.name);
        make_run_dir(&dir)?;
        Ok(Group { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write_limits(&self, limits: &Limits) -> Result<(), String> {
        if let Some(memory) = limits.memory {
            self.set("memory", "memory.max", &memory.to_string())?;
            // docker's meaning: --memory-swap is memory plus swap; by default no swap at all,
            // so the memory limit is real.
            let swap = match limits.memory_swap {
                None => "0".to_string(),
                Some(SwapLimit::Total(total)) => total.saturating_sub(memory).to_string(),
                Some(SwapLimit::Unlimited) => "max".to_string(),
            };
            let swap_file = self.dir.join("memory.swap.max");
            if swap_file.exists() || limits.memory_swap.is_some() {
                self.set("memory", "memory.swap.max", &swap)?;
            } else {
                log::debug!("no memory.swap.max (no swap accounting): swap is not limited");
            }
        }
        if let Some(quota) = limits.cpu_quota_us {
            self.set("cpu", "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
        }
        if let Some(pids) = limits.pids {
            self.set("pids", "pids.max", &pids.to_string())?;
        }
        Ok(())
    }

    fn set(&self, controller: &str, file: &str, value: &str) -> Result<(), String> {
        let path = self.dir.join(file);
        write(&path, value).map_err(|err| {
            let fix = match err.raw_os_error() {
                Some(libc::ENOENT) => format!(
                    " (the {controller} controller is not enabled for this cgroup: it must be in {}/cgroup.subtree_control)",
                    self.dir.parent().unwrap_or(&self.dir).display()
                ),
                Some(libc::EACCES) | Some(libc::EPERM) => {
                    " (run as root or use a delegated cgroup with --cgroup-parent)".to_string()
                }
                _ => String::new(),
            };
            format!(
                "cannot apply the {controller} limit: cannot write '{value}' to {}: {}{fix}",
                path.display(),
                error_text(&err)
            )
        })
    }

    pub fn add(&self, pid: libc::pid_t) -> Result<(), String> {
        let path = self.dir.join("cgroup.procs");
        write(&path, &pid.to_string()).map_err(|err| {
            format!(
                "cannot move the sandbox into cgroup {}: {}",
                self.dir.display(),
                error_text(&err)
            )
        })
    }

    /// Kills every process left in the cgroup and waits until it is empty.
    pub fn kill_all(&self, deadline: Instant) {
        if !self.populated() {
            return;
        }
        log::info!(
            "killing the processes left in cgroup {}",
            self.dir.display()
        );
        // cgroup.kill (Linux 5.14) kills the whole subtree at once, including processes
        // forked while it runs; without it, SIGKILL what cgroup.procs lists until it is empty.
        let use_kill_file = write(&self.dir.join("cgroup.kill"), "1").is_ok();
        loop {
            if !use_kill_file {
                kill_listed(&self.dir);
            }
            if wait_until_empty(&self.dir, deadline) {
                return;
            }
            if Instant::now() >= deadline {
                log::warn!(
                    "processes in cgroup {} survived SIGKILL (uninterruptible sleep?)",
                    self.dir.display()
                );
                return;
            }
        }
    }

    fn populated(&self) -> bool {
        match read_key(&self.dir.join("cgroup.events"), "populated") {
            Some(n) => n != 0,
            // No cgroup.events (not a real cgroup, e.g. a test root): trust cgroup.procs.
            None => !read_procs(&self.dir).is_empty(),
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            oom_kills: read_key(&self.dir.join("memory.events"), "oom_kill"),
            memory_peak: read_number(&self.dir.join("memory.peak")),
            cpu_usec: read_key(&self.dir.join("cpu.stat"), "usage_usec"),
            pids_peak: read_number(&self.dir.join("pids.peak")),
        }
    }

    pub fn remove(&self, deadline: Instant) {
        remove_dir(&self.dir, deadline);
    }
}

/// Makes `controllers` available to children of `parent`: creates the missing cgroups on
/// the way and enables each controller in every `cgroup.subtree_control` from the root down.
fn enable_controllers(
    mount: &Path,
    parent: &str,
    controllers: &[&str],
    self_cgroup: &str,
) -> Result<(), String> {
    let mut levels = vec![String::new()];
    let mut acc = String::new();
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        levels.push(acc.clone());
    }
    for level in &levels {
        let dir = under(mount, level);
        if !dir.exists() {
            make_dirs(&dir)?;
        }
        for controller in controllers {
            enable(mount, &dir, level, controller, self_cgroup)?;
        }
    }
    Ok(())
}

fn enable(
    mount: &Path,
    dir: &Path,
    level: &str,
    controller: &str,
    self_cgroup: &str,
) -> Result<(), String> {
    let enabled = read_text(&dir.join("cgroup.subtree_control")).unwrap_or_default();
    if enabled.split_whitespace().any(|c| c == controller) {
        return Ok(());
    }
    let available = read_text(&dir.join("cgroup.controllers")).unwrap_or_default();
    if !available.split_whitespace().any(|c| c == controller) {
        let above = dir.parent().filter(|_| !level.is_empty()).unwrap_or(mount);
        return Err(format!(
            "cannot use the {controller} controller: it is not available in cgroup {} (not in its cgroup.controllers); enable it in {}/cgroup.subtree_control or have the cgroup delegated with {controller}",
            dir.display(),
            above.display(),
        ));
    }
    let control = dir.join("cgroup.subtree_control");
    let mut result = write(&control, &format!("+{controller}"));
    if result.as_ref().err().and_then(io::Error::raw_os_error) == Some(libc::EBUSY)
        && move_self_to_leaf(dir, level, self_cgroup)
    {
        result = write(&control, &format!("+{controller}"));
    }
    result.map_err(|err| {
        let why = if err.raw_os_error() == Some(libc::EBUSY) {
            format!(
                " (cgroup /{level} holds processes, and cgroup v2 enables controllers only in cgroups without; pass --cgroup-parent with a cgroup that has no processes)"
            )
        } else {
            String::new()
        };
        format!(
            "cannot enable the {controller} controller in {}: {}{why}",
            control.display(),
            error_text(&err)
        )
    })
}

/// The no-internal-process rule: when minit is the only process of the cgroup that must
/// enable controllers, it moves itself into a leaf below and the cgroup becomes an inner
/// node. Other processes are never moved. Returns true if minit moved.
fn move_self_to_leaf(dir: &Path, level: &str, self_cgroup: &str) -> bool {
    if own_path(self_cgroup, "").as_deref() != Some(level) {
        return false;
    }
    let me = std::process::id() as libc::pid_t;
    if read_procs(dir).iter().map(|p| p.raw()).ne([me]) {
        return false;
    }
    let leaf = dir.join(MONITOR_LEAF);
    if let Err(err) = std::fs::create_dir(&leaf)
        && err.kind() != io::ErrorKind::AlreadyExists
    {
        return false;
    }
    let moved = write(&leaf.join("cgroup.procs"), &me.to_string()).is_ok();
    if moved {
        log::info!("moved minit into {} to enable controllers", leaf.display());
    }
    moved
}

/// Waits for `cgroup.events` to say "populated 0": true once it does, false at the
/// deadline or after a change that still leaves processes (the caller kills again).
/// The kernel signals POLLPRI for any change after the file was opened, so opening before
/// reading leaves no window in which the last exit could be missed.
fn wait_until_empty(dir: &Path, deadline: Instant) -> bool {
    let Ok(mut file) = std::fs::File::open(dir.join("cgroup.events")) else {
        return read_procs(dir).is_empty();
    };
    let mut text = String::new();
    if io::Read::read_to_string(&mut file, &mut text).is_err() {
        return read_procs(dir).is_empty();
    }
    if text.lines().any(|l| l == "populated 0") {
        return true;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLPRI,
        revents: 0,
    };
    let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, ms) };
    read_key(&dir.join("cgroup.events"), "populated") == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::cgroup::Layout;
    use crate::launch::cgroup::testroot::TempRoot;

    fn limits() -> Limits {
        Limits {
            memory: Some(64 << 20),
            memory_swap: None,
            cpu_quota_us: Some(50_000),
            pids: Some(20),
        }
    }

    fn request<'a>(root: &'a TempRoot, limits: &'a Limits, parent: Option<&'a str>) -> Request<'a> {
        Request {
            root: root.path(),
            layout: Layout::Unified,
            parent,
            name: "minit-42",
            limits,
            self_cgroup: "0::/\n",
        }
    }

    #[test]
    fn limits_are_written_and_controllers_enabled_top_down() {
        let root = TempRoot::new("v2");
        root.file("cgroup.controllers", "cpuset cpu io memory pids\n");
        root.file("cgroup.subtree_control", "");
        let limits = limits();
        let group = Group::create(root.path(), &request(&root, &limits, None)).unwrap();
        assert_eq!(group.dir(), root.path().join("minit-42"));
        assert_eq!(root.read("minit-42/memory.max"), (64u64 << 20).to_string());
        assert_eq!(root.read("minit-42/memory.swap.max"), "");
        assert_eq!(root.read("minit-42/cpu.max"), "50000 100000");
        assert_eq!(root.read("minit-42/pids.max"), "20");
        // A plain file stands in for subtree_control: the last write wins.
        assert_eq!(root.read("cgroup.subtree_control"), "+pids");
        group.add(7).unwrap();
        assert_eq!(root.read("minit-42/cgroup.procs"), "7");
    }

    #[test]
    fn swap_follows_docker() {
        let root = TempRoot::new("v2swap");
        root.file("cgroup.controllers", "memory\n");
        root.file("cgroup.subtree_control", "memory\n");
        std::fs::create_dir(root.path().join("minit-42")).unwrap();
        let group = Group {
            dir: root.path().join("minit-42"),
        };
        let mut l = Limits {
            memory: Some(100),
            memory_swap: Some(SwapLimit::Total(150)),
            ..Limits::default()
        };
        group.write_limits(&l).unwrap();
        assert_eq!(root.read("minit-42/memory.swap.max"), "50");
        l.memory_swap = Some(SwapLimit::Unlimited);
        group.write_limits(&l).unwrap();
        assert_eq!(root.read("minit-42/memory.swap.max"), "max");
        // With swap accounting present and no --memory-swap: no swap at all.
        l.memory_swap = None;
        group.write_limits(&l).unwrap();
        assert_eq!(root.read("minit-42/memory.swap.max"), "0");
    }

    #[test]
    fn a_missing_controller_names_the_cgroup_and_subtree_control() {
        let root = TempRoot::new("v2missing");
        root.file("cgroup.controllers", "cpu memory pids\n");
        root.file("cgroup.subtree_control", "cpu memory pids\n");
        root.file("app/cgroup.controllers", "memory pids\n");
        root.file("app/cgroup.subtree_control", "");
        let limits = limits();
        let err = Group::create(root.path(), &request(&root, &limits, Some("app")))
            .err()
            .unwrap();
        assert!(err.contains("cpu controller"), "{err}");
        assert!(err.contains("cgroup.subtree_control"), "{err}");
        assert!(
            err.contains(&root.path().join("app").display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn a_tracker_needs_no_controllers() {
        let root = TempRoot::new("v2track");
        let limits = Limits::default();
        let group =
            Group::create_tracker(root.path(), &request(&root, &limits, Some("a/b"))).unwrap();
        assert!(root.path().join("a/b/minit-42").is_dir());
        group.remove(Instant::now());
        assert!(!root.path().join("a/b/minit-42").exists());
    }

    #[test]
    fn needed_controllers_follow_the_limits() {
        assert_eq!(needed_controllers(&limits()), ["memory", "cpu", "pids"]);
        assert!(needed_controllers(&Limits::default()).is_empty());
    }
}
