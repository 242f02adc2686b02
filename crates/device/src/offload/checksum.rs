//! The Internet checksum (RFC 1071): a one's-complement sum of big-endian
//! 16-bit words, complemented.
//!
//! [`sum`] adds 8 bytes at a time into a `u64` with end-around carry (two
//! independent accumulators, so the carry chains overlap); since
//! 2^16 ≡ 1 (mod 2^16 − 1), a 64-bit one's-complement sum folds to the same
//! 16-bit sum ([`fold`]). Partial sums compose: `sum(b, sum(a, 0))` equals
//! the sum of `a` then `b` provided `a` has an even length (the 16-bit
//! words must line up), which the callers here guarantee by splitting only
//! at header boundaries.

/// Adds `bytes` to the unfolded one's-complement sum `initial`, reading
/// them as big-endian 16-bit words (an odd last byte is the high half of a
/// word). Returns the new unfolded sum; pass it to [`fold`] or
/// [`checksum`].
pub fn sum(bytes: &[u8], initial: u64) -> u64 {
    let mut a = initial;
    let mut b = 0u64;
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        let (x, y) = chunk.split_at(8);
        a = add(a, word(x));
        b = add(b, word(y));
    }
    let rest = chunks.remainder();
    let (x, tail) = rest.split_at(rest.len().min(8));
    a = add(a, word(x));
    b = add(b, word(tail));
    add(a, b)
}

/// Folds an unfolded sum to 16 bits (not complemented).
pub fn fold(sum: u64) -> u16 {
    let s = (sum >> 32) + (sum & 0xffff_ffff);
    let s = (s >> 16) + (s & 0xffff);
    let s = (s >> 16) + (s & 0xffff);
    let s = (s >> 16) + (s & 0xffff);
    s as u16
}

/// The checksum of `bytes` on top of `initial`: the complement of the
/// folded sum, ready to store big-endian. A packet whose checksum field is
/// correct has `checksum(packet, pseudo) == 0`.
pub fn checksum(bytes: &[u8], initial: u64) -> u16 {
    !fold(sum(bytes, initial))
}

/// The unfolded sum of the TCP/UDP pseudo-header: source and destination
/// addresses (4 bytes each for IPv4, 16 for IPv6), the protocol, and the
/// transport length (header + payload). IPv4's 16-bit and IPv6's 32-bit
/// length fields sum the same way, so one function serves both.
pub fn pseudo_header_sum(src: &[u8], dst: &[u8], protocol: u8, transport_len: u32) -> u64 {
    let s = sum(src, 0);
    let s = sum(dst, s);
    add(add(s, u64::from(protocol)), u64::from(transport_len))
}

/// One's-complement addition: a carry out of bit 63 wraps to bit 0.
#[inline(always)]
fn add(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    // Cannot overflow: with a carry, s <= 2^64 - 2.
    s + u64::from(carry)
}

/// Up to 8 bytes as a big-endian word, zero-padded on the right (so an odd
/// tail byte lands in the high half of its 16-bit word).
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(bytes) {
        Ok(exact) => u64::from_be_bytes(exact),
        Err(_) => {
            let mut padded = [0u8; 8];
            for (slot, byte) in padded.iter_mut().zip(bytes) {
                *slot = *byte;
            }
            u64::from_be_bytes(padded)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::testutil::reference_checksum;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&bytes, 0)), 0xddf2);
        assert_eq!(checksum(&bytes, 0), !0xddf2);
    }

    #[test]
    fn ipv4_header_with_its_checksum_verifies() {
        // A captured IPv4 header (checksum 0xb861).
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&header, 0), 0);
        let mut zeroed = header;
        zeroed[10..12].fill(0);
        assert_eq!(checksum(&zeroed, 0), 0xb861);
    }

    #[test]
    fn all_ones_does_not_overflow() {
        let bytes = vec![0xffu8; 70_000];
        assert_eq!(fold(sum(&bytes, u64::MAX)), 0xffff);
        assert_eq!(checksum(&bytes, 0), reference_checksum(&bytes, 0));
    }

    proptest! {
        #[test]
        fn matches_a_word_by_word_reference(bytes in proptest::collection::vec(any::<u8>(), 0..600), initial in any::<u32>()) {
            prop_assert_eq!(checksum(&bytes, u64::from(initial)), reference_checksum(&bytes, initial));
        }

        #[test]
        fn sums_compose_at_even_splits(bytes in proptest::collection::vec(any::<u8>(), 0..600), split in any::<prop::sample::Index>()) {
            let at = split.index(bytes.len() + 1) & !1;
            let (a, b) = bytes.split_at(at);
            prop_assert_eq!(fold(sum(b, sum(a, 0))), fold(sum(&bytes, 0)));
        }

        #[test]
        fn pseudo_header_matches_its_serialisation(src: [u8; 16], dst: [u8; 16], protocol: u8, len: u32) {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&src);
            bytes.extend_from_slice(&dst);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, protocol]);
            prop_assert_eq!(fold(pseudo_header_sum(&src, &dst, protocol, len)), fold(sum(&bytes, 0)));
        }
    }
}
