//! The entry point. minit takes over from the C runtime directly (`no_main`) because Rust's
//! own start-up would change the state the app must inherit: it sets SIGPIPE to ignored and
//! reopens closed stdio descriptors on /dev/null. argv is taken as raw bytes, so non-UTF-8
//! arguments reach the app unchanged.
#![no_main]

use std::ffi::{CStr, OsString};
use std::os::unix::ffi::OsStringExt;

/// # Safety
/// Called by the C runtime with its argc/argv: `argv` holds `argc` valid C strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    let args: Vec<OsString> = (1..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: the C runtime guarantees argv[0..argc] are valid NUL-terminated strings.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsString::from_vec(arg.to_bytes().to_vec())
        })
        .collect();
    libc::c_int::from(minit::run(args))
}
