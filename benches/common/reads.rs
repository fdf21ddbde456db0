//! Helpers shared by the benches that read content back (workload d): `ingest` and `reads`.

use std::io::Read;

/// Reads to the end through a 1 MiB buffer; returns the byte count and, when asked, the
/// blake3 of the content (for the untimed warm-up pass that checks both sides agree).
pub fn read_all(r: &mut impl Read, digest: bool) -> std::io::Result<(u64, Option<blake3::Hash>)> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut h = digest.then(blake3::Hasher::new);
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if let Some(h) = h.as_mut() {
            h.update(&buf[..n]);
        }
        std::hint::black_box(&buf[..n]);
        total += n as u64;
    }
    Ok((total, h.map(|h| h.finalize())))
}

/// `n` offsets at which a read of `range` bytes fits in `size` bytes, from a fixed-seed
/// xorshift, so every system reads the same places.
pub fn offsets(size: u64, range: usize, n: usize) -> Vec<u64> {
    let span = size.saturating_sub(range as u64).max(1);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % span
        })
        .collect()
}
