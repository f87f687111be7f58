//! The end of a machine: when minit is the kernel's own init — PID 1 of the initial PID
//! namespace, as in a VM or on bare metal — exiting would make the kernel panic ("Attempted to
//! kill init!"). There minit syncs the filesystems and powers the machine off (or reboots it
//! with `--reboot`) instead, after printing the app's status on one line.
//!
//! Detection needs no /proc (a VM's init starts with nothing mounted): `reboot(2)` with
//! `LINUX_REBOOT_CMD_CAD_OFF` succeeds only in the initial PID namespace; in any other one
//! the kernel answers EINVAL for every command but restart/power-off/halt (see reboot(2),
//! "Behavior inside PID namespaces"), and without CAP_SYS_BOOT it answers EPERM. The probe's
//! one effect — Ctrl-Alt-Del sends SIGINT to PID 1 instead of rebooting at once — is what an
//! init wants anyway, and minit is about to power off.

use std::io::Write;

/// What to do with the machine once the app has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    PowerOff,
    Reboot,
}

/// True when minit is PID 1 of the initial PID namespace (and may reboot the machine).
pub fn is_machine_init() -> bool {
    // SAFETY: getpid cannot fail.
    if unsafe { libc::getpid() } != 1 {
        return false;
    }
    // SAFETY: reboot with CAD_OFF only changes what Ctrl-Alt-Del does; see the module note.
    unsafe { libc::reboot(libc::RB_DISABLE_CAD) == 0 }
}

/// As the machine's init, prints one line with the app's exit status, syncs and powers off
/// or reboots: does not return unless that fails. Anywhere else, returns at once and minit
/// exits with `code` as usual.
pub fn end_machine_if_init(code: u8, ending: Ending) {
    if !is_machine_init() {
        return;
    }
    let (word, cmd) = match ending {
        Ending::PowerOff => ("powering off", libc::RB_POWER_OFF),
        Ending::Reboot => ("rebooting", libc::RB_AUTOBOOT),
    };
    // Written directly, not logged: it must show even with MINIT_LOG=off.
    let _ = writeln!(std::io::stderr(), "minit: app exited with {code}; {word}");
    // SAFETY: sync and reboot take no pointers; as the machine's init minit holds
    // CAP_SYS_BOOT (the probe above succeeded).
    unsafe {
        libc::sync();
        libc::reboot(cmd);
    }
    let err = std::io::Error::last_os_error();
    let _ = writeln!(
        std::io::stderr(),
        "minit: cannot {}: {err}; exiting with {code}",
        if ending == Ending::PowerOff {
            "power off"
        } else {
            "reboot"
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_process_is_never_the_machine_init() {
        // The test runner is not PID 1, so the probe is not even made; ending is a no-op.
        assert!(!is_machine_init());
        end_machine_if_init(0, Ending::PowerOff);
    }
}
