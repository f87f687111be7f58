//! Letting go of what minit inherited: once the app runs, minit moves to `/` and closes every
//! descriptor beyond stdio except its own signalfd, so a long-lived init pins no mount and
//! holds no pipe open (catatonit#28). The app keeps its cwd and descriptors.

/// Changes to `/` and closes every fd above 2 except `keep`.
pub fn release_pins(keep: i32) {
    // SAFETY: chdir with a static NUL-terminated path.
    if unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
        log::warn!(
            "cannot change directory to /: {}",
            std::io::Error::last_os_error()
        );
    }
    close_from(3, keep);
}

fn close_range(first: u32, last: u32) -> bool {
    if first > last {
        return true;
    }
    // SAFETY: close_range only closes descriptors; minit owns every fd in the range except
    // `keep`, which the caller left out of it.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) == 0 }
}

fn close_from(first: i32, keep: i32) {
    let (first, keep) = (first as u32, keep as u32);
    let done = if keep >= first {
        close_range(first, keep - 1) && close_range(keep + 1, u32::MAX)
    } else {
        close_range(first, u32::MAX)
    };
    if done {
        return;
    }
    // Kernels before 5.9 have no close_range: close what /proc lists.
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds.into_iter().filter(|&fd| fd >= first && fd != keep) {
        // SAFETY: closing a descriptor minit inherited; the directory's own fd may be among
        // them and is already closed, which is harmless.
        unsafe { libc::close(fd as i32) };
    }
}
