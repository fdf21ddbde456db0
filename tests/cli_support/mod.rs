//! Helpers shared by the command-line tests (`tests/cli.rs`, `tests/cli_export.rs`).

use std::process::Output;

/// Asserts that a command failed with one line on stderr, `recfiles: ` and then a message
/// containing `contains`.
pub fn assert_one_line_error(out: &Output, contains: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("recfiles: "), "stderr: {err}");
    assert!(err.contains(contains), "stderr {err:?} lacks {contains:?}");
}

/// Deterministic bytes that differ between seeds (no two 64-byte windows repeat in practice).
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
