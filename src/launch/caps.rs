//! Privileges inside the sandbox: `--cap-drop` and `no_new_privs`.
//!
//! Capabilities are dropped from the bounding set, the inheritable set and the ambient set of
//! minit inside the sandbox; the app, exec'd from there, can then never hold them. minit keeps
//! its own effective set: as PID 1 it may need CAP_KILL to end leftovers that changed user.

use crate::logging::error_text;
use std::io;

/// Capability names as in capabilities(7), without `CAP_`, indexed by number.
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Parses `ALL` or a comma-separated list (`NET_RAW,cap_sys_admin`) into capability numbers.
pub fn parse_list(text: &str) -> Result<Vec<u32>, String> {
    if text.eq_ignore_ascii_case("all") {
        return Ok((0..NAMES.len() as u32).collect());
    }
    let mut caps = Vec::new();
    for item in text.split(',').map(str::trim) {
        let upper = item.to_ascii_uppercase();
        let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
        match NAMES.iter().position(|known| *known == name) {
            Some(cap) => caps.push(cap as u32),
            None => {
                return Err(format!(
                    "--cap-drop: '{item}' is not a capability (ALL, or names like NET_RAW)"
                ));
            }
        }
    }
    Ok(caps)
}

/// Drops `caps` from the bounding, inheritable and ambient sets of this process.
pub fn drop_caps(caps: &[u32]) -> Result<(), String> {
    if caps.is_empty() {
        return Ok(());
    }
    // The running kernel may know fewer capabilities than the table.
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .unwrap_or(NAMES.len() as u32 - 1);
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    for &cap in caps.iter().filter(|&&c| c <= last_cap) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
            let err = io::Error::last_os_error();
            return Err(format!(
                "cannot drop CAP_{} from the bounding set: {}",
                NAMES[cap as usize],
                error_text(&err)
            ));
        }
    }
    clear_inheritable(caps).map_err(|err| {
        format!(
            "cannot clear inheritable capabilities: {}",
            error_text(&err)
        )
    })
}

/// The kernel's capability structures for `_LINUX_CAPABILITY_VERSION_3`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

fn clear_inheritable(caps: &[u32]) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as version 3 requires.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for &cap in caps {
        data[(cap / 32) as usize].inheritable &= !(1 << (cap % 32));
    }
    // SAFETY: as above; the sets only shrink, which needs no privilege.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `no_new_privs`: setuid binaries and file capabilities grant nothing from here on.
pub fn set_no_new_privs() -> Result<(), String> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        let err = io::Error::last_os_error();
        return Err(format!("cannot set no_new_privs: {}", error_text(&err)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(parse_list("NET_RAW"), Ok(vec![13]));
        assert_eq!(parse_list("cap_sys_admin, KILL"), Ok(vec![21, 5]));
        assert_eq!(parse_list("all").map(|v| v.len()), Ok(41));
        assert!(parse_list("NET_RAW,BOGUS").is_err());
        assert!(parse_list("").is_err());
    }
}
