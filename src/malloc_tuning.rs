//! glibc's malloc thresholds, fixed at start so an idle server gives freed memory back.
//!
//! glibc serves large blocks with mmap, and each time such a block is freed it raises its mmap
//! threshold to that block's size and its trim threshold to twice that. agentos frees a 19 MiB
//! block at start (the argon2 hash that evens out login timing), after which heap memory freed
//! below ~38 MiB stayed with the process for good. Setting the thresholds turns that adjustment
//! off; the values are glibc's own defaults.

/// Blocks from this size up are mmapped, and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;
/// Free memory at the top of the heap beyond this is returned to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 128 * 1024;

/// Fixes the thresholds (a no-op where the allocator is not glibc's). Call before threads start.
pub fn fix_malloc_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
