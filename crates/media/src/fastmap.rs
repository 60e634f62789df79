//! A fast hash map (and set) for the per-packet lookups of the media path (leg id → slot,
//! source address → leg, room id → room).
//!
//! Why not the std default: SipHash costs more than the rest of such a lookup, and
//! these maps are hit once or twice per datagram. The hasher is rustc's FxHash
//! (a multiply per word, as in the `rustc-hash` crate), written out here to keep the
//! dependency list short. It is not DoS-resistant, which is fine for what we key with
//! it: ids we generate, and source addresses of legs that already latched (a stranger
//! can look addresses up but cannot add any).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `HashMap` with [`FxHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// rustc's FxHash: add a word, multiply by an odd constant; rotate on finish so the
/// well-mixed high bits reach the bucket index.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = self.hash.wrapping_add(word).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i.into());
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i.into());
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i.into());
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn spreads_sequential_keys_and_addresses() {
        let mut m: FastMap<u64, u64> = FastMap::default();
        for i in 0..10_000u64 {
            m.insert(i << 8 | 1, i);
        }
        assert!((0..10_000u64).all(|i| m[&(i << 8 | 1)] == i));
        let mut a: FastMap<SocketAddr, u32> = FastMap::default();
        for p in 0..5_000u16 {
            a.insert(SocketAddr::from(([127, 0, 0, 2], 40_000 + p)), p.into());
        }
        assert_eq!(a.get(&SocketAddr::from(([127, 0, 0, 2], 41_234))), Some(&1_234));
        assert_eq!(a.get(&SocketAddr::from(([127, 0, 0, 3], 41_234))), None);
    }
}
