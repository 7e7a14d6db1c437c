//! Settings of the C library's allocator (glibc's malloc, which Rust's global allocator
//! calls on Linux), applied once at the start of the process.

/// The most allocation arenas glibc may create. By default every thread that allocates
/// while another holds an arena gets one of its own (up to eight per core), and memory
/// freed there stays with that arena: after a burst of requests the server's tokio
/// workers and blocking threads kept ~0.7 MB more between them than with two arenas
/// (README, "Under load, over loopback"). Two arenas still let the two halves of the
/// server (requests, the store's blocking calls) allocate without waiting on each other.
pub const MAX_ARENAS: i32 = 2;

/// Caps glibc's arenas at [`MAX_ARENAS`]; call it before any thread starts. Returns
/// whether the allocator took the setting (always false off glibc, where it does not
/// apply). An operator's `MALLOC_ARENA_MAX` still wins: glibc's own variable is the
/// documented way to tune it, so it is left alone when set.
pub fn limit_arenas() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    set_arena_max(MAX_ARENAS)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(arenas: i32) -> bool {
    // SAFETY: `mallopt` only records the setting for arenas created later; it takes no
    // pointers, and an unknown or refused value is reported as 0, not undefined behaviour.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_arena_limit() {
        assert!(set_arena_max(MAX_ARENAS));
    }
}
