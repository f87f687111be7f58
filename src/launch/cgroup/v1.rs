//! cgroup v1: one `minit-<pid>` directory in each controller's hierarchy that the run needs
//! (memory, cpu, pids), plus cpuacct for CPU time and the freezer to stop leftovers before
//! killing them when no v2 tree is there to do it.

use super::{
    Request, Stats, kill_listed, make_dirs, make_run_dir, parent_path, read_key, read_number,
    read_procs, read_text, remove_dir, under, write,
};
use crate::launch::cgroup::Layout;
use crate::launch::options::{CPU_PERIOD_US, Limits, SwapLimit};
use crate::logging::error_text;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct Groups {
    /// Controller name and the run's directory in its hierarchy.
    dirs: Vec<(&'static str, PathBuf)>,
}

impl Groups {
    pub fn create(req: &Request) -> Result<Groups, String> {
        let mut groups = Groups { dirs: Vec::new() };
        match groups.create_all(req) {
            Ok(()) => Ok(groups),
            Err(err) => {
                groups.remove(super::deadline());
                Err(err)
            }
        }
    }

    fn create_all(&mut self, req: &Request) -> Result<(), String> {
        let limits = req.limits;
        let mut wanted: Vec<(&'static str, bool)> = Vec::new();
        if limits.memory.is_some() {
            wanted.push(("memory", true));
        }
        if limits.cpu_quota_us.is_some() {
            wanted.push(("cpu", true));
        }
        if limits.pids.is_some() {
            wanted.push(("pids", true));
        }
        if req.layout == Layout::Legacy {
            // Helpers, used when present: CPU time and stopping leftovers.
            wanted.push(("cpuacct", false));
            wanted.push(("freezer", false));
        }
        for (controller, required) in wanted {
            let mount = req.root.join(controller);
            if !mount.join("cgroup.procs").exists() {
                if required {
                    return Err(format!(
                        "cannot use the {controller} controller: no cgroup v1 hierarchy for it at {} (mount it, or enable it in the cgroup v2 tree)",
                        mount.display()
                    ));
                }
                continue;
            }
            let base = under(&mount, &parent_path(req, controller));
            make_dirs(&base)?;
            let dir = base.join(req.name);
            make_run_dir(&dir)?;
            self.dirs.push((controller, dir));
        }
        self.write_limits(limits)
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    fn write_limits(&self, limits: &Limits) -> Result<(), String> {
        if let (Some(memory), Some(dir)) = (limits.memory, self.dir("memory")) {
            set(dir, "memory", "memory.limit_in_bytes", &memory.to_string())?;
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            // memory+swap, written after the memory limit: the kernel keeps memsw >= memory.
            let total = match limits.memory_swap {
                None => Some(memory.to_string()),
                Some(SwapLimit::Total(total)) => Some(total.to_string()),
                Some(SwapLimit::Unlimited) => None,
            };
            match total {
                Some(total) if memsw.exists() => {
                    set(dir, "memory", "memory.memsw.limit_in_bytes", &total)?;
                }
                Some(_) if limits.memory_swap.is_some() => {
                    return Err(format!(
                        "cannot apply the memory-swap limit: {} is missing (the kernel does not account swap; boot with swapaccount=1, or leave out --memory-swap)",
                        memsw.display()
                    ));
                }
                Some(_) => {
                    // No swap accounting: at least keep this cgroup from swapping.
                    if let Err(err) = write(&dir.join("memory.swappiness"), "0") {
                        log::debug!("cannot set memory.swappiness: {err}");
                    }
                }
                None => {}
            }
        }
        if let (Some(quota), Some(dir)) = (limits.cpu_quota_us, self.dir("cpu")) {
            set(dir, "cpu", "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
            set(dir, "cpu", "cpu.cfs_quota_us", &quota.to_string())?;
        }
        if let (Some(pids), Some(dir)) = (limits.pids, self.dir("pids")) {
            set(dir, "pids", "pids.max", &pids.to_string())?;
        }
        Ok(())
    }

    pub fn add(&self, pid: libc::pid_t) -> Result<(), String> {
        for (_, dir) in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string()).map_err(|err| {
                format!(
                    "cannot move the sandbox into cgroup {}: {}",
                    dir.display(),
                    error_text(&err)
                )
            })?;
        }
        Ok(())
    }

    /// Kills every process left: frozen first when the freezer is there, so none can fork
    /// while the list is being killed; otherwise SIGKILL rounds until the list is empty.
    pub fn kill_all(&self, deadline: Instant) {
        let Some((_, dir)) = self.dirs.first() else {
            return;
        };
        if read_procs(dir).is_empty() {
            return;
        }
        log::info!("killing the processes left in cgroup {}", dir.display());
        let freezer = self.dir("freezer");
        if let Some(freezer) = freezer {
            let _ = write(&freezer.join("freezer.state"), "FROZEN");
            // v1 has no change notification: poll the state with a growing pause.
            let mut pause = std::time::Duration::from_micros(100);
            while Instant::now() < deadline
                && read_text(&freezer.join("freezer.state")).is_some_and(|s| s.trim() == "FREEZING")
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(20));
            }
        }
        let mut pause = std::time::Duration::from_micros(100);
        while Instant::now() < deadline {
            if read_procs(dir).is_empty() {
                break;
            }
            kill_listed(dir);
            if let Some(freezer) = freezer {
                let _ = write(&freezer.join("freezer.state"), "THAWED");
            }
            // v1 has no change notification for cgroup.procs: poll it with a growing pause.
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(20));
        }
    }

    pub fn stats(&self) -> Stats {
        let memory = self.dir("memory");
        Stats {
            oom_kills: memory.and_then(|d| read_key(&d.join("memory.oom_control"), "oom_kill")),
            memory_peak: memory.and_then(|d| read_number(&d.join("memory.max_usage_in_bytes"))),
            cpu_usec: self
                .dir("cpuacct")
                .and_then(|d| read_number(&d.join("cpuacct.usage")))
                .map(|ns| ns / 1000),
            pids_peak: self
                .dir("pids")
                .and_then(|d| read_number(&d.join("pids.peak"))),
        }
    }

    /// The memory cgroup directory, if the run has one.
    pub fn memory_dir(&self) -> Option<&Path> {
        self.dir("memory")
    }

    pub fn remove(&self, deadline: Instant) {
        for (_, dir) in self.dirs.iter().rev() {
            remove_dir(dir, deadline);
        }
    }
}

fn set(dir: &Path, controller: &str, file: &str, value: &str) -> Result<(), String> {
    let path = dir.join(file);
    write(&path, value).map_err(|err| {
        let fix = match err.raw_os_error() {
            Some(libc::ENOENT) => {
                " (the kernel lacks this file: it was built without that part of the controller)"
            }
            Some(libc::EACCES) | Some(libc::EPERM) => {
                " (run as root or use a delegated cgroup with --cgroup-parent)"
            }
            Some(libc::EINVAL) => " (the value is outside what the parent cgroup allows)",
            _ => "",
        };
        format!(
            "cannot apply the {controller} limit: cannot write '{value}' to {}: {}{fix}",
            path.display(),
            error_text(&err)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::cgroup::testroot::TempRoot;

    const SELF: &str = "8:pids:/\n4:memory:/svc\n2:cpu:/\n1:cpuacct:/\n0::/\n";

    fn hierarchy(root: &TempRoot, controller: &str, parent: &str) {
        root.file(&format!("{controller}/cgroup.procs"), "");
        if !parent.is_empty() {
            root.file(&format!("{controller}/{parent}/cgroup.procs"), "");
        }
    }

    #[test]
    fn limits_go_into_each_controller_under_its_own_parent() {
        let root = TempRoot::new("v1");
        hierarchy(&root, "memory", "svc");
        hierarchy(&root, "cpu", "");
        hierarchy(&root, "pids", "");
        let limits = Limits {
            memory: Some(64 << 20),
            memory_swap: None,
            cpu_quota_us: Some(150_000),
            pids: Some(20),
        };
        let req = Request {
            root: root.path(),
            layout: Layout::Hybrid,
            parent: None,
            name: "minit-9",
            limits: &limits,
            self_cgroup: SELF,
        };
        let groups = Groups::create(&req).unwrap();
        let limit = (64u64 << 20).to_string();
        assert_eq!(root.read("memory/svc/minit-9/memory.limit_in_bytes"), limit);
        // No memsw file in a fresh fake directory: swappiness 0 instead.
        assert_eq!(root.read("memory/svc/minit-9/memory.swappiness"), "0");
        assert_eq!(root.read("cpu/minit-9/cpu.cfs_period_us"), "100000");
        assert_eq!(root.read("cpu/minit-9/cpu.cfs_quota_us"), "150000");
        assert_eq!(root.read("pids/minit-9/pids.max"), "20");
        assert!(!root.path().join("freezer/minit-9").exists());
        groups.add(5).unwrap();
        assert_eq!(root.read("pids/minit-9/cgroup.procs"), "5");
        root.file(
            "memory/svc/minit-9/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        root.file("memory/svc/minit-9/memory.max_usage_in_bytes", "1234\n");
        let stats = groups.stats();
        assert_eq!((stats.oom_kills, stats.memory_peak), (Some(2), Some(1234)));
    }

    /// The legacy path for real, on the v1 hierarchies of this host: freeze, SIGKILL, thaw,
    /// remove. Needs root and a v1 freezer; skipped (with the reason) otherwise.
    #[test]
    fn legacy_kill_freezes_and_kills_for_real() {
        // SAFETY: geteuid cannot fail.
        let root_user = unsafe { libc::geteuid() } == 0;
        let root = Path::new("/sys/fs/cgroup");
        if !root_user || !root.join("freezer/cgroup.procs").exists() {
            eprintln!("skipped: needs root and a cgroup v1 freezer");
            return;
        }
        let self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let limits = Limits {
            pids: Some(50),
            ..Limits::default()
        };
        let name = format!("minit-unittest-{}", std::process::id());
        let req = Request {
            root,
            layout: Layout::Legacy,
            parent: None,
            name: &name,
            limits: &limits,
            self_cgroup: &self_cgroup,
        };
        let groups = Groups::create(&req).unwrap();
        assert!(groups.dir("freezer").is_some() && groups.dir("pids").is_some());
        let mut child = std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .unwrap();
        groups.add(child.id() as libc::pid_t).unwrap();
        groups.kill_all(Instant::now() + std::time::Duration::from_secs(10));
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(groups.stats().pids_peak, Some(1));
        let dirs: Vec<PathBuf> = groups.dirs.iter().map(|(_, d)| d.clone()).collect();
        groups.remove(Instant::now() + std::time::Duration::from_secs(10));
        for dir in dirs {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }

    #[test]
    fn a_missing_hierarchy_is_named() {
        let root = TempRoot::new("v1missing");
        hierarchy(&root, "memory", "");
        let limits = Limits {
            pids: Some(5),
            ..Limits::default()
        };
        let req = Request {
            root: root.path(),
            layout: Layout::Legacy,
            parent: Some("ci"),
            name: "minit-9",
            limits: &limits,
            self_cgroup: SELF,
        };
        let err = Groups::create(&req).err().unwrap();
        assert!(err.contains("pids controller"), "{err}");
        assert!(
            err.contains(&root.path().join("pids").display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn explicit_swap_without_accounting_is_an_error() {
        let root = TempRoot::new("v1swap");
        hierarchy(&root, "memory", "");
        let limits = Limits {
            memory: Some(1 << 20),
            memory_swap: Some(SwapLimit::Total(2 << 20)),
            ..Limits::default()
        };
        let req = Request {
            root: root.path(),
            layout: Layout::Hybrid,
            parent: None,
            name: "minit-9",
            limits: &limits,
            self_cgroup: SELF,
        };
        let err = Groups::create(&req).err().unwrap();
        assert!(err.contains("memory.memsw.limit_in_bytes"), "{err}");
        assert!(
            !root.path().join("memory/minit-9").exists(),
            "left behind on error"
        );
    }
}
