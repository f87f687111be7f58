//! A cgroup per run: the limits, the tracking of every process the app starts, the final
//! kill and the statistics.
//!
//! Three host layouts, told apart with `statfs` on the cgroup mount as youki does:
//! - unified (pure cgroup v2): one `minit-<pid>` directory does everything;
//! - hybrid (v1 controllers, plus a v2 tree at `unified/` with no controllers): limits in the
//!   v1 controller directories, tracking and `cgroup.kill` in the v2 tree;
//! - legacy (v1 only): limits in v1, the freezer to stop leftovers before killing them.
//!
//! Every path is built from a configurable root, so the file writes are unit-tested against a
//! temporary directory. A limit that cannot be applied is an error that names the controller,
//! the file and the fix; nothing is silently skipped.

pub mod v1;
pub mod v2;

use crate::launch::options::Limits;
use crate::logging::error_text;
use crate::targets::{Pid, signal_process};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where cgroup file systems are mounted on a normal host.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// `CGROUP2_SUPER_MAGIC` from linux/magic.h.
const CGROUP2_MAGIC: u64 = 0x6367_7270;

/// How the host mounts cgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Unified,
    Hybrid,
    Legacy,
}

/// Detects the layout under `root` from the file system types.
pub fn detect_layout(root: &Path) -> Result<Layout, String> {
    let magic = |path: &Path| -> io::Result<u64> {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: statfs is plain data; all-zero is a valid value.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: the path is NUL-terminated and `st` is a live out-parameter.
        if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // The field's type differs between C libraries; the magic fits in 32 bits.
        #[allow(clippy::unnecessary_cast)]
        Ok(st.f_type as u64)
    };
    match magic(root) {
        Ok(m) if m == CGROUP2_MAGIC => Ok(Layout::Unified),
        Ok(_) => match magic(&root.join("unified")) {
            Ok(m) if m == CGROUP2_MAGIC => Ok(Layout::Hybrid),
            _ => Ok(Layout::Legacy),
        },
        Err(err) => Err(format!(
            "cannot find the cgroup file system at {}: {}",
            root.display(),
            error_text(&err)
        )),
    }
}

/// What the cgroup saw of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub oom_kills: Option<u64>,
    pub memory_peak: Option<u64>,
    pub cpu_usec: Option<u64>,
    pub pids_peak: Option<u64>,
}

/// The run's cgroup, whichever layout holds it.
pub enum RunCgroup {
    V2(v2::Group),
    V1 {
        limits: v1::Groups,
        /// The v2 tree of a hybrid host, used to track and kill.
        tracker: Option<v2::Group>,
    },
}

/// Where and what to create.
pub struct Request<'a> {
    pub root: &'a Path,
    pub layout: Layout,
    /// Relative to the root of each hierarchy; `None`: minit's own cgroup.
    pub parent: Option<&'a str>,
    /// The run's directory name, `minit-<pid>`.
    pub name: &'a str,
    pub limits: &'a Limits,
    /// `/proc/self/cgroup` as read, to find minit's own cgroups.
    pub self_cgroup: &'a str,
}

impl RunCgroup {
    /// Creates the cgroup(s) and writes every limit, before any process joins.
    pub fn create(req: &Request) -> Result<RunCgroup, String> {
        match req.layout {
            Layout::Unified => Ok(RunCgroup::V2(v2::Group::create(req.root, req)?)),
            Layout::Hybrid => {
                let tracker = v2::Group::create_tracker(&req.root.join("unified"), req)?;
                match v1::Groups::create(req) {
                    Ok(limits) => Ok(RunCgroup::V1 {
                        limits,
                        tracker: Some(tracker),
                    }),
                    Err(err) => {
                        tracker.remove(deadline());
                        Err(err)
                    }
                }
            }
            Layout::Legacy => Ok(RunCgroup::V1 {
                limits: v1::Groups::create(req)?,
                tracker: None,
            }),
        }
    }

    /// The v2 directory the sandbox can be cloned straight into (`CLONE_INTO_CGROUP`).
    pub fn v2_dir(&self) -> Option<&Path> {
        match self {
            RunCgroup::V2(group) => Some(group.dir()),
            RunCgroup::V1 { tracker, .. } => tracker.as_ref().map(|t| t.dir()),
        }
    }

    /// Moves `pid` into the cgroup(s); `born_in_v2`: it was cloned into `v2_dir` already.
    pub fn add(&self, pid: libc::pid_t, born_in_v2: bool) -> Result<(), String> {
        match self {
            RunCgroup::V2(group) if !born_in_v2 => group.add(pid),
            RunCgroup::V2(_) => Ok(()),
            RunCgroup::V1 { limits, tracker } => {
                if let Some(tracker) = tracker.as_ref().filter(|_| !born_in_v2) {
                    tracker.add(pid)?;
                }
                limits.add(pid)
            }
        }
    }

    /// Reads the statistics, kills whatever is left and removes the cgroup(s).
    pub fn finish(self) -> Stats {
        let deadline = deadline();
        match self {
            RunCgroup::V2(group) => {
                group.kill_all(deadline);
                let stats = group.stats();
                group.remove(deadline);
                stats
            }
            RunCgroup::V1 { limits, tracker } => {
                match &tracker {
                    Some(tracker) => tracker.kill_all(deadline),
                    None => limits.kill_all(deadline),
                }
                let mut stats = limits.stats();
                if let Some(tracker) = tracker {
                    stats.cpu_usec = stats.cpu_usec.or(tracker.stats().cpu_usec);
                    tracker.remove(deadline);
                }
                limits.remove(deadline);
                stats
            }
        }
    }
}

/// How long the end of a run may wait for the cgroup to empty and go away. Emptying is
/// normally immediate; a process in uninterruptible sleep can hold it up.
fn deadline() -> Instant {
    Instant::now() + std::time::Duration::from_secs(5)
}

/// The path of minit's own cgroup in the hierarchy whose `/proc/self/cgroup` line has
/// `controller` among its controllers (`""` for the v2 line).
pub fn own_path(self_cgroup: &str, controller: &str) -> Option<String> {
    self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let matches = if controller.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == controller)
        };
        matches.then(|| path.trim_matches('/').to_string())
    })
}

/// The parent cgroup's path relative to a hierarchy root.
fn parent_path(req: &Request, controller: &str) -> String {
    match req.parent {
        Some(parent) => parent.to_string(),
        None => own_path(req.self_cgroup, controller).unwrap_or_default(),
    }
}

/// Writes `value` to a cgroup file; the error names the file.
fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value)
}

fn read_text(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// Reads a file holding a single number.
fn read_number(path: &Path) -> Option<u64> {
    read_text(path)?.trim().parse().ok()
}

/// Reads `key value` lines (memory.events, cpu.stat, memory.oom_control) for `key`.
fn read_key(path: &Path, key: &str) -> Option<u64> {
    read_text(path)?.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Creates `dir` and any missing ancestors below `root` (`mkdir -p`), for a cgroup parent.
fn make_dirs(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|err| {
        format!(
            "cannot create cgroup {}: {}",
            dir.display(),
            error_text(&err)
        )
    })
}

/// Creates the run's own directory; it must be new, so a stale one is never adopted.
fn make_run_dir(dir: &Path) -> Result<(), String> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        // Left by an earlier run whose pid was reused: empty, so it can go.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => fs::remove_dir(dir)
            .and_then(|()| fs::create_dir(dir))
            .map_err(|err| {
                format!(
                    "cannot create cgroup {}: it exists and cannot be removed: {}",
                    dir.display(),
                    error_text(&err)
                )
            }),
        Err(err) => Err(format!(
            "cannot create cgroup {}: {}{}",
            dir.display(),
            error_text(&err),
            permission_hint(&err)
        )),
    }
}

fn permission_hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            " (run as root, or give a delegated cgroup with --cgroup-parent)"
        }
        _ => "",
    }
}

/// Removes an empty cgroup directory, retrying while the kernel still calls it busy (the
/// last processes are being torn down) until `deadline`. Between tries it yields the CPU
/// briefly; correctness does not depend on how long.
fn remove_dir(dir: &Path, deadline: Instant) {
    let mut pause = std::time::Duration::from_micros(100);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return,
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(20));
            }
            Err(err) => {
                log::warn!(
                    "cannot remove cgroup {}: {}",
                    dir.display(),
                    error_text(&err)
                );
                return;
            }
        }
    }
}

/// The pids listed in a `cgroup.procs` file. A process outside minit's PID namespace is
/// listed as 0, which `Pid` refuses: `kill(0)` would hit minit's own process group.
fn read_procs(dir: &Path) -> Vec<Pid> {
    read_text(&dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Pid::new(l.trim().parse().ok()?))
        .collect()
}

/// SIGKILLs every process `cgroup.procs` lists.
fn kill_listed(dir: &Path) {
    for pid in read_procs(dir) {
        // ESRCH: it ended meanwhile, which is what was wanted.
        let _ = signal_process(pid, libc::SIGKILL);
    }
}

/// A root-relative path joined onto a hierarchy mount.
fn under(mount: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

#[cfg(test)]
pub(crate) mod testroot {
    //! A throw-away directory standing in for /sys/fs/cgroup.
    use std::path::{Path, PathBuf};

    pub struct TempRoot(pub PathBuf);

    impl TempRoot {
        pub fn new(tag: &str) -> TempRoot {
            let dir = std::env::temp_dir().join(format!(
                "minit-cgtest-{tag}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempRoot(dir)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }

        pub fn file(&self, rel: &str, text: &str) {
            let path = self.0.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        pub fn read(&self, rel: &str) -> String {
            std::fs::read_to_string(self.0.join(rel)).unwrap_or_default()
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/svc/a\n2:cpu,cpuacct:/x\n0::/\n";

    #[test]
    fn own_paths() {
        assert_eq!(own_path(HYBRID, "memory").as_deref(), Some("svc/a"));
        assert_eq!(own_path(HYBRID, "cpuacct").as_deref(), Some("x"));
        assert_eq!(own_path(HYBRID, "pids").as_deref(), Some(""));
        assert_eq!(own_path(HYBRID, "").as_deref(), Some(""));
        assert_eq!(own_path(HYBRID, "freezer"), None);
        assert_eq!(
            own_path("0::/user.slice/s.scope\n", "").as_deref(),
            Some("user.slice/s.scope")
        );
    }

    #[test]
    fn keyed_files() {
        let root = testroot::TempRoot::new("keys");
        root.file("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
        assert_eq!(
            read_key(&root.path().join("memory.events"), "oom_kill"),
            Some(1)
        );
        assert_eq!(read_key(&root.path().join("memory.events"), "oom"), Some(1));
        assert_eq!(read_key(&root.path().join("memory.events"), "nope"), None);
    }

    #[test]
    fn this_host_has_a_layout() {
        // Whatever the machine, detection must not fail where cgroups are mounted.
        if Path::new(DEFAULT_ROOT).exists() {
            assert!(detect_layout(Path::new(DEFAULT_ROOT)).is_ok());
        }
    }
}
