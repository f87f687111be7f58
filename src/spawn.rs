//! The fork/exec boundary: starting the app.
//!
//! Everything the child needs is built before `fork` — argv and envp as C strings and pointer
//! arrays, the list of paths to try, the signal state to restore, a CLOEXEC pipe for the exec
//! error. Between `fork` and `exec` the child makes raw syscalls only: no allocation, no
//! locks, no logging, no formatting, no unwinding. If exec fails the child writes its errno
//! to the pipe and `_exit`s; the parent prints the one message.

use crate::signals::{self, InheritedSignals};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

/// `PATH` used when the app's environment has none, as `execvp` does.
const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

unsafe extern "C" {
    static environ: *const *const libc::c_char;
}

/// The app's command line, prepared for exec.
pub struct AppCommand {
    /// The program as the user wrote it, for messages.
    pub program: String,
    argv: Vec<CString>,
    /// Paths to try, in order, as `execvp` searches `PATH`.
    candidates: Vec<CString>,
    /// `None`: the app inherits minit's environment.
    envp: Option<Vec<CString>>,
}

/// How to start the app.
#[derive(Clone, Copy, Debug)]
pub struct SpawnOptions {
    pub inherited: InheritedSignals,
    /// minit's stdin is a terminal and minit is in its foreground: the app's process group
    /// takes the terminal, so Ctrl-C and Ctrl-Z reach it.
    pub take_terminal: bool,
    /// `-p`: the app gets this signal when minit dies (PR_SET_PDEATHSIG), so a minit killed
    /// by SIGKILL does not leave the app running as an orphan. (The kernel clears it when the
    /// app execs a set-user-ID program.)
    pub app_death_signal: Option<i32>,
}

#[derive(Debug)]
pub enum SpawnError {
    /// exec failed in the child with this errno (the child has been reaped).
    Exec(i32),
    /// fork or another step failed in minit.
    Os(&'static str, io::Error),
}

impl SpawnError {
    /// The exit status for this failure: 127 not found, 126 not runnable, 125 minit's own.
    pub fn exit_code(&self) -> u8 {
        match self {
            SpawnError::Exec(libc::ENOENT) | SpawnError::Exec(libc::ENOTDIR) => 127,
            SpawnError::Exec(_) => 126,
            SpawnError::Os(..) => 125,
        }
    }
}

fn c_string(bytes: &[u8], what: &str) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{what} contains a NUL byte"))
}

impl AppCommand {
    /// Prepares `args` (program first) with `env` (`None`: inherit minit's environment).
    pub fn new(args: &[OsString], env: Option<&[OsString]>) -> Result<AppCommand, String> {
        let program = args.first().ok_or("no command given")?;
        let argv = args
            .iter()
            .map(|a| c_string(a.as_bytes(), "an argument"))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = match env {
            None => None,
            Some(vars) => Some(
                vars.iter()
                    .map(|v| c_string(v.as_bytes(), "an environment variable"))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let path_var = match env {
            None => std::env::var_os("PATH"),
            Some(vars) => vars.iter().find_map(|v| {
                v.as_bytes()
                    .strip_prefix(b"PATH=")
                    .map(|p| OsStr::from_bytes(p).to_os_string())
            }),
        };
        let candidates = search_path(program.as_bytes(), path_var.as_deref())
            .into_iter()
            .map(|p| c_string(&p, "the program path"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AppCommand {
            program: program.to_string_lossy().into_owned(),
            argv,
            candidates,
            envp,
        })
    }
}

/// The paths `execvp` would try for `program`, in order.
fn search_path(program: &[u8], path: Option<&OsStr>) -> Vec<Vec<u8>> {
    if program.is_empty() {
        return vec![Vec::new()];
    }
    if program.contains(&b'/') {
        return vec![program.to_vec()];
    }
    let path = path.map(|p| p.as_bytes()).unwrap_or(DEFAULT_PATH);
    path.split(|&b| b == b':')
        .map(|dir| {
            // An empty entry means the current directory.
            let mut full = if dir.is_empty() {
                b".".to_vec()
            } else {
                dir.to_vec()
            };
            full.push(b'/');
            full.extend_from_slice(program);
            full
        })
        .collect()
}

/// Forks and execs the app; returns its pid once exec has succeeded.
pub fn spawn_app(cmd: &AppCommand, opts: &SpawnOptions) -> Result<libc::pid_t, SpawnError> {
    let mut argv: Vec<*const libc::c_char> = cmd.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp_storage: Option<Vec<*const libc::c_char>> = cmd.envp.as_ref().map(|vars| {
        let mut ptrs: Vec<_> = vars.iter().map(|v| v.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        ptrs
    });
    let candidates: Vec<*const libc::c_char> = cmd.candidates.iter().map(|c| c.as_ptr()).collect();

    // The exec-error pipe. Without one (e.g. `ulimit -n` nearly exhausted) the app still
    // starts; an exec failure is then known only by the child's exit code.
    let mut pipe_fds = [-1; 2];
    // SAFETY: pipe_fds has room for the two descriptors.
    let have_pipe = unsafe { libc::pipe2(pipe_fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0;
    if !have_pipe {
        let err = io::Error::last_os_error();
        log::warn!(
            "cannot create the exec-error pipe ({}): the app still starts, but a failed exec shows only as exit status 127/126",
            crate::logging::error_text(&err)
        );
    }

    // SAFETY: `environ` is the process's environment, read before fork while it is stable.
    let envp: *const *const libc::c_char = match &envp_storage {
        Some(ptrs) => ptrs.as_ptr(),
        None => unsafe { environ },
    };

    // SAFETY: getpid cannot fail.
    let parent = unsafe { libc::getpid() };
    // SAFETY: minit is single-threaded, so the child is a full copy with no lock held by
    // another thread; it then runs only `exec_child`, which makes raw syscalls.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let err = io::Error::last_os_error();
        if have_pipe {
            close_pair(pipe_fds);
        }
        return Err(SpawnError::Os("fork", err));
    }
    if pid == 0 {
        let error_fd = if have_pipe { pipe_fds[1] } else { -1 };
        // SAFETY: all pointers were built before fork and stay valid in the child's copy.
        unsafe { exec_child(&candidates, argv.as_ptr(), envp, opts, parent, error_fd) }
    }

    // Also set the group from the parent, as shells do, so a signal to the group cannot
    // race the child's own setpgid. It fails harmlessly once the child has exec'd.
    // SAFETY: plain syscall on our own child.
    unsafe { libc::setpgid(pid, pid) };

    if !have_pipe {
        return Ok(pid);
    }
    // SAFETY: closing our copy of the write end, which nothing else owns.
    unsafe { libc::close(pipe_fds[1]) };
    let errno = read_exec_error(pipe_fds[0]);
    // SAFETY: closing the read end, which nothing else owns.
    unsafe { libc::close(pipe_fds[0]) };
    match errno {
        None => Ok(pid),
        Some(errno) => {
            let mut status = 0;
            // SAFETY: reaping our own child, which has exited or is about to.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            Err(SpawnError::Exec(errno))
        }
    }
}

fn close_pair(fds: [i32; 2]) {
    for fd in fds {
        // SAFETY: closing descriptors this function created and nothing else owns.
        unsafe { libc::close(fd) };
    }
}

/// Reads the child's errno from the pipe: `None` when the pipe closed empty (exec worked).
fn read_exec_error(fd: i32) -> Option<i32> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the buffer has room for the remaining bytes.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    (got == buf.len()).then(|| i32::from_ne_bytes(buf))
}

/// The child between fork and exec. Async-signal-safe calls only; never returns.
///
/// # Safety
/// Must be called only in a freshly forked child; the pointers must be valid, NULL-terminated
/// arrays (argv, envp).
unsafe fn exec_child(
    candidates: &[*const libc::c_char],
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    opts: &SpawnOptions,
    parent: libc::pid_t,
    error_fd: i32,
) -> ! {
    // SAFETY (whole function): raw syscalls on this process only, with pointers prepared
    // before fork.
    unsafe {
        libc::setpgid(0, 0);
        if opts.take_terminal {
            // Signals are still blocked, so this background group gets no SIGTTOU.
            libc::tcsetpgrp(0, libc::getpid());
        }
        if opts.inherited.sigchld_ignored {
            signals::set_disposition(libc::SIGCHLD, libc::SIG_IGN);
        }
        if let Some(sig) = opts.app_death_signal {
            libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0);
            // minit died before the prctl: the signal will never come, so act now (it is
            // still blocked here and delivered when the mask is restored below, unless the
            // caller's mask blocks it too, in which case the app gets it pending).
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), sig);
            }
        }
        let _ = signals::set_mask(opts.inherited.mask);

        // Try each candidate as execvp does: keep searching past "not found", remember
        // "permission denied", stop at any other error.
        let mut errno = libc::ENOENT;
        let mut denied = false;
        for &path in candidates {
            libc::execve(path, argv, envp);
            errno = *libc::__errno_location();
            match errno {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                _ => break,
            }
        }
        if denied && matches!(errno, libc::ENOENT | libc::ENOTDIR) {
            errno = libc::EACCES;
        }
        if error_fd >= 0 {
            let bytes = errno.to_ne_bytes();
            libc::write(error_fd, bytes.as_ptr().cast(), bytes.len());
        }
        let code = if matches!(errno, libc::ENOENT | libc::ENOTDIR) {
            127
        } else {
            126
        };
        libc::_exit(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search_matches_execvp() {
        fn p(s: &str) -> Option<&OsStr> {
            Some(OsStr::new(s))
        }
        assert_eq!(search_path(b"/bin/sh", p("/x")), vec![b"/bin/sh".to_vec()]);
        assert_eq!(search_path(b"./run", p("/x")), vec![b"./run".to_vec()]);
        assert_eq!(
            search_path(b"sh", p("/a::/b")),
            vec![b"/a/sh".to_vec(), b"./sh".to_vec(), b"/b/sh".to_vec()]
        );
        assert_eq!(search_path(b"sh", None).len(), 6);
        assert_eq!(search_path(b"", p("/a")), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn exec_errors_map_to_shell_codes() {
        assert_eq!(SpawnError::Exec(libc::ENOENT).exit_code(), 127);
        assert_eq!(SpawnError::Exec(libc::EACCES).exit_code(), 126);
        assert_eq!(SpawnError::Exec(libc::ENOEXEC).exit_code(), 126);
        let os = SpawnError::Os("fork", io::Error::from_raw_os_error(libc::EAGAIN));
        assert_eq!(os.exit_code(), 125);
    }
}
