//! The sandbox's file system, built inside its new mount namespace: propagation to the host
//! cut, a fresh /proc for the new PID namespace, and with `--rootfs` a new root holding a
//! minimal /dev and a tmpfs /tmp, entered with `pivot_root`; then the user's `--bind`,
//! `--ro-bind` and `--tmpfs` in command-line order.

use crate::launch::options::MountSpec;
use crate::logging::error_text;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Device nodes of the minimal /dev, bound from the host (a user namespace cannot mknod).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

pub struct Plan<'a> {
    pub rootfs: Option<&'a Path>,
    pub mounts: &'a [MountSpec],
    /// A new PID namespace: mount a /proc that shows it.
    pub fresh_proc: bool,
}

/// Builds the file system. Runs in the sandbox, which is in its new mount namespace.
pub fn set_up(plan: &Plan) -> Result<(), String> {
    // Nothing mounted from here on may reach the host, and nothing the host mounts later
    // reaches the sandbox.
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .map_err(|err| format!("cannot make / private: {err}"))?;
    let Some(rootfs) = plan.rootfs else {
        if plan.fresh_proc {
            mount_proc(Path::new("/proc"))?;
        }
        return apply_user_mounts(Path::new("/"), plan.mounts);
    };
    let root = rootfs.canonicalize().map_err(|err| {
        format!(
            "cannot use {} as the root: {}",
            rootfs.display(),
            error_text(&err)
        )
    })?;
    // pivot_root needs the new root to be a mount point.
    bind(&root, &root, false)?;
    let proc = inside(&root, Path::new("/proc"))?;
    if plan.fresh_proc {
        mount_proc(&proc)?;
    } else {
        // Without a new PID namespace the host's /proc is the truthful one.
        bind(Path::new("/proc"), &proc, false)?;
    }
    build_dev(&inside(&root, Path::new("/dev"))?)?;
    mount_tmpfs(&inside(&root, Path::new("/tmp"))?, "mode=1777")?;
    apply_user_mounts(&root, plan.mounts)?;
    enter_root(&root)
}

fn apply_user_mounts(root: &Path, mounts: &[MountSpec]) -> Result<(), String> {
    for spec in mounts {
        match spec {
            MountSpec::Bind {
                source,
                target,
                read_only,
            } => {
                let target = inside(root, target)?;
                make_mount_point(source, &target)?;
                bind(source, &target, *read_only)?;
            }
            MountSpec::Tmpfs { target } => {
                mount_tmpfs(&inside(root, target)?, "mode=755")?;
            }
        }
    }
    Ok(())
}

/// `target` (absolute, inside the sandbox) as a path under `root`, with every symlink on
/// the way resolved as the sandbox will see it: an absolute link starts again at `root` and
/// `..` stops there, as openat2's RESOLVE_IN_ROOT does (Linux 5.6+; done by hand here). So
/// a rootfs whose `/mnt` is a symlink to a host directory cannot make minit create a mount
/// point or mount anything on the host. Components that do not exist yet are kept, to be
/// created. (A rootfs changed by someone else while minit sets it up is not defended
/// against: the result is checked, not held open.)
fn inside(root: &Path, target: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    // Still to walk, last component first.
    let mut pending: Vec<PathBuf> = Vec::new();
    let push_all = |pending: &mut Vec<PathBuf>, path: &Path| {
        for part in path.components().rev() {
            match part {
                Component::Normal(name) => pending.push(PathBuf::from(name)),
                Component::ParentDir => pending.push(PathBuf::from("..")),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
    };
    push_all(&mut pending, target);
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part.as_os_str() == ".." {
            resolved.pop();
            continue;
        }
        let candidate = root.join(&resolved).join(&part);
        let is_link = fs::symlink_metadata(&candidate).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            resolved.push(part);
            continue;
        }
        links += 1;
        let link = fs::read_link(&candidate).map_err(|err| {
            format!(
                "cannot read the link {}: {}",
                candidate.display(),
                error_text(&err)
            )
        })?;
        if links > 40 {
            return Err(format!(
                "cannot resolve {} in the root: too many levels of symbolic links",
                target.display()
            ));
        }
        if link.is_absolute() {
            resolved = PathBuf::new();
        }
        push_all(&mut pending, &link);
    }
    Ok(root.join(resolved))
}

/// A fresh procfs; as PID 1 of the new PID namespace it shows only the sandbox.
fn mount_proc(target: &Path) -> Result<(), String> {
    if !target.is_dir() {
        return Err(format!(
            "cannot mount proc on {}: no such directory",
            target.display()
        ));
    }
    mount(
        Some(OsStr::new("proc")),
        target,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )
    .map_err(|err| format!("cannot mount proc on {}: {err}", target.display()))
}

fn mount_tmpfs(target: &Path, options: &str) -> Result<(), String> {
    make_dir(target)?;
    mount(
        Some(OsStr::new("tmpfs")),
        target,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(options),
    )
    .map_err(|err| format!("cannot mount a tmpfs on {}: {err}", target.display()))
}

/// A tmpfs /dev with the host's harmless devices bound in, a private devpts and a tmpfs
/// /dev/shm.
fn build_dev(dev: &Path) -> Result<(), String> {
    mount_tmpfs(dev, "mode=755")?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let node = dev.join(name);
        make_file(&node)?;
        bind(&host, &node, false)?;
    }
    let pts = dev.join("pts");
    make_dir(&pts)?;
    // newinstance: the sandbox's ptys are its own. No gid= option: group 5 may not be mapped
    // in a user namespace.
    mount(
        Some(OsStr::new("devpts")),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|err| format!("cannot mount devpts on {}: {err}", pts.display()))?;
    symlink("pts/ptmx", &dev.join("ptmx"))?;
    mount_tmpfs(&dev.join("shm"), "mode=1777")?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, &dev.join(link))?;
    }
    Ok(())
}

/// Makes `root` the root: `pivot_root(".", ".")` stacks the old root on top of the new one,
/// and a lazy unmount of "." removes it (the trick runc and pivot_root(2) describe), so no
/// directory for the old root is needed in the image.
fn enter_root(root: &Path) -> Result<(), String> {
    let fail = |what: &str, err: io::Error| format!("cannot {what}: {}", error_text(&err));
    std::env::set_current_dir(root).map_err(|e| fail("enter the new root", e))?;
    // SAFETY: pivot_root with two static NUL-terminated paths.
    if unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) } != 0 {
        return Err(fail(
            &format!("pivot_root into {}", root.display()),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: umount2 with a static path and a flag.
    if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(fail("detach the old root", io::Error::last_os_error()));
    }
    std::env::set_current_dir("/").map_err(|e| fail("change directory to /", e))
}

/// Bind-mounts `source` on `target` (recursively); read-only needs a second, remounting
/// call, which must keep the flags the kernel locked on the source (nosuid, nodev, …) or a
/// user namespace gets EPERM.
fn bind(source: &Path, target: &Path, read_only: bool) -> Result<(), String> {
    let fail = |err: String| {
        format!(
            "cannot bind {} on {}: {err}",
            source.display(),
            target.display()
        )
    };
    mount(
        Some(source.as_os_str()),
        target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(fail)?;
    if read_only {
        let locked = locked_flags(target);
        mount(
            None,
            target,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked,
            None,
        )
        .map_err(|err| format!("cannot make {} read-only: {err}", target.display()))?;
    }
    Ok(())
}

/// `ST_RELATIME` from sys/statvfs.h (glibc names it; musl's libc crate does not).
const ST_RELATIME: libc::c_ulong = 0x1000;

/// The per-mount flags of the mount holding `path`, as `MS_*` bits.
fn locked_flags(path: &Path) -> libc::c_ulong {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs is plain data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: the path is NUL-terminated and `st` is a live out-parameter.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (ST_RELATIME, libc::MS_RELATIME),
    ]
    .iter()
    .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
    .fold(0, |acc, (_, ms)| acc | ms)
}

/// Creates what a bind needs to mount over: a directory for a directory, a file otherwise.
fn make_mount_point(source: &Path, target: &Path) -> Result<(), String> {
    let meta = fs::metadata(source)
        .map_err(|err| format!("cannot bind {}: {}", source.display(), error_text(&err)))?;
    if meta.is_dir() {
        make_dir(target)
    } else {
        if let Some(parent) = target.parent() {
            make_dir(parent)?;
        }
        make_file(target)
    }
}

fn make_dir(path: &Path) -> Result<(), String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|err| format!("cannot create {}: {}", path.display(), error_text(&err)))
}

fn make_file(path: &Path) -> Result<(), String> {
    match fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
    {
        Ok(_) => Ok(()),
        // A device node or other special file already there is a fine mount point.
        Err(_) if path.exists() => Ok(()),
        Err(err) => Err(format!(
            "cannot create {}: {}",
            path.display(),
            error_text(&err)
        )),
    }
}

fn symlink(target: &str, link: &Path) -> Result<(), String> {
    std::os::unix::fs::symlink(target, link)
        .map_err(|err| format!("cannot create {}: {}", link.display(), error_text(&err)))
}

/// mount(2) with Rust strings; the error is the C library's wording.
fn mount(
    source: Option<&OsStr>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let c = |bytes: &[u8]| CString::new(bytes).map_err(|_| "path contains a NUL byte".to_string());
    let source = source.map(|s| c(s.as_bytes())).transpose()?;
    let target = c(target.as_os_str().as_bytes())?;
    let fstype = fstype.map(|s| c(s.as_bytes())).transpose()?;
    let data = data.map(|s| c(s.as_bytes())).transpose()?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string alive for the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if rc != 0 {
        return Err(error_text(&io::Error::last_os_error()));
    }
    Ok(())
}

/// Checks `--rootfs DIR` before anything is created, so the error comes from the monitor.
pub fn check_rootfs(rootfs: &Path) -> Result<(), String> {
    if !rootfs.is_dir() {
        return Err(format!(
            "cannot use {} as the root: no such directory",
            rootfs.display()
        ));
    }
    if !rootfs.join("proc").is_dir() {
        return Err(format!(
            "cannot use {} as the root: it has no /proc directory to mount proc on (mkdir {}/proc)",
            rootfs.display(),
            rootfs.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_stay_under_the_root() {
        assert_eq!(
            inside(Path::new("/nonexistent-root"), Path::new("/data/x")),
            Ok(PathBuf::from("/nonexistent-root/data/x"))
        );
        assert_eq!(
            inside(Path::new("/"), Path::new("/tmp")),
            Ok(PathBuf::from("/tmp"))
        );
    }

    #[test]
    fn symlinks_in_the_root_resolve_inside_it() {
        use std::os::unix::fs::symlink;
        let root = std::env::temp_dir().join(format!("minit-inside-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../etc", root.join("rel")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let at = |t: &str| inside(&root, Path::new(t));
        assert_eq!(at("/abs/x"), Ok(root.join("etc/x")));
        assert_eq!(at("/rel/x"), Ok(root.join("etc/x")));
        assert_eq!(at("/lib/x"), Ok(root.join("usr/lib/x")));
        assert_eq!(at("/../../x"), Ok(root.join("x")));
        assert!(at("/loop/x").unwrap_err().contains("symbolic links"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn rootfs_checks() {
        let dir = std::env::temp_dir().join(format!("minit-rootfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert!(
            check_rootfs(&dir)
                .unwrap_err()
                .contains("no such directory")
        );
        fs::create_dir_all(&dir).unwrap();
        assert!(check_rootfs(&dir).unwrap_err().contains("no /proc"));
        fs::create_dir_all(dir.join("proc")).unwrap();
        assert!(check_rootfs(&dir).is_ok());
        fs::remove_dir_all(&dir).unwrap();
    }
}
