//! The work itself: xor memory with a 4 KiB block of random bytes.
//!
//! Memory is handled as 64-bit words so the loop vectorizes (SSE2 on any x86-64; the block is 512
//! words and stays in L1). Byte `i` of a region is xored with byte `i % 4096` of the block, exactly
//! as a byte loop would do it, as long as each call starts on a 4 KiB boundary of the region.

/// Bytes in the random block.
pub const PATTERN_BYTES: usize = 4096;
/// 64-bit words in the random block.
pub const PATTERN_WORDS: usize = PATTERN_BYTES / 8;

/// Where a pattern's random bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RandomSource {
    /// `getrandom(GRND_INSECURE)`: never blocks (Linux >= 5.6).
    Insecure,
    /// `getrandom(GRND_NONBLOCK)`: older kernels, once the pool is ready.
    Nonblock,
    /// The kernel had nothing without blocking: a generator seeded from the clocks.
    TimeSeeded,
}

/// The 4 KiB random block one thread xors its memory with.
#[derive(Clone)]
#[repr(C, align(64))]
pub struct Pattern(pub [u64; PATTERN_WORDS]);

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pattern({:016x}..)", self.0[0])
    }
}

impl Pattern {
    /// A block of random bytes from the kernel, never waiting for its entropy pool.
    pub fn random() -> (Pattern, RandomSource) {
        let mut bytes = [0u8; PATTERN_BYTES];
        let source = if fill_getrandom(&mut bytes, libc::GRND_INSECURE) {
            RandomSource::Insecure
        } else if fill_getrandom(&mut bytes, libc::GRND_NONBLOCK) {
            RandomSource::Nonblock
        } else {
            fill_time_seeded(&mut bytes);
            RandomSource::TimeSeeded
        };
        (Pattern::from_bytes(&bytes), source)
    }

    /// The block whose bytes in memory order are `bytes`.
    pub fn from_bytes(bytes: &[u8; PATTERN_BYTES]) -> Pattern {
        let mut words = [0u64; PATTERN_WORDS];
        for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_ne_bytes(b.try_into().expect("chunks_exact(8) yields 8 bytes"));
        }
        Pattern(words)
    }
}

/// Fills `buf` with `getrandom(flags)`; false if the kernel refuses (unknown flag, pool not
/// ready) so the caller falls back.
fn fill_getrandom(buf: &mut [u8], flags: libc::c_uint) -> bool {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: the pointer and length describe the writable slice `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), flags) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
        done += n as usize;
    }
    true
}

/// splitmix64, seeded from the wall and monotonic clocks, the thread id and a call counter.
fn fill_time_seeded(buf: &mut [u8]) {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut state = crate::system::realtime_ns()
        ^ call.wrapping_mul(0xd6e8_feb8_6659_fd93)
        ^ crate::system::monotonic_ns().rotate_left(32)
        ^ (crate::system::gettid() as u64).rotate_left(17);
    for chunk in buf.chunks_mut(8) {
        let z = splitmix64(&mut state);
        chunk.copy_from_slice(&z.to_ne_bytes()[..chunk.len()]);
    }
}

/// splitmix64: a fast generator with good statistics, for the clock-seeded block and for
/// picking random pages; not for secrets.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Xors `words` with the pattern repeated; `words[0]` is taken to be at a 4 KiB boundary.
#[inline]
pub fn xor_words(words: &mut [u64], pattern: &Pattern) {
    let mut blocks = words.chunks_exact_mut(PATTERN_WORDS);
    for block in &mut blocks {
        for (w, p) in block.iter_mut().zip(pattern.0.iter()) {
            *w ^= *p;
        }
    }
    for (w, p) in blocks.into_remainder().iter_mut().zip(pattern.0.iter()) {
        *w ^= *p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_pattern() -> ([u8; PATTERN_BYTES], Pattern) {
        let mut bytes = [0u8; PATTERN_BYTES];
        fill_time_seeded(&mut bytes);
        (bytes, Pattern::from_bytes(&bytes))
    }

    #[test]
    fn words_match_a_byte_loop() {
        let (bytes, pattern) = test_pattern();
        // 2.5 blocks: whole blocks plus a remainder.
        let n_words = PATTERN_WORDS * 5 / 2;
        let mut words: Vec<u64> = (0..n_words as u64)
            .map(|i| i.wrapping_mul(0x0101_0101))
            .collect();
        let mut expect: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        for (i, b) in expect.iter_mut().enumerate() {
            *b ^= bytes[i % PATTERN_BYTES];
        }
        xor_words(&mut words, &pattern);
        let got: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn twice_is_identity_and_empty_is_fine() {
        let (_, pattern) = test_pattern();
        let orig: Vec<u64> = (0..3000u64).collect();
        let mut words = orig.clone();
        xor_words(&mut words, &pattern);
        assert_ne!(words, orig);
        xor_words(&mut words, &pattern);
        assert_eq!(words, orig);
        xor_words(&mut [], &pattern);
    }

    #[test]
    fn random_pattern_is_not_constant() {
        let (a, _) = Pattern::random();
        let (b, _) = Pattern::random();
        assert_ne!(a.0, b.0);
        assert!(a.0.iter().any(|&w| w != a.0[0]));
    }

    #[test]
    fn time_seeded_differs_per_call() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        fill_time_seeded(&mut a);
        fill_time_seeded(&mut b);
        assert_ne!(a, b);
    }
}
