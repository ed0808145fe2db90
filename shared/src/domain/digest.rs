//! The one digest of the code base: SHA-256 over length-prefixed parts (so `("ab", "c")` and
//! `("a", "bc")` differ), in hex. Idempotency keys, request digests and cursor list names use it.

use sha2::{Digest, Sha256};

pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(
            super::sha256_hex(&[b"ab", b"c"]),
            super::sha256_hex(&[b"a", b"bc"])
        );
        assert_eq!(super::sha256_hex(&[b"x"]).len(), 64);
    }
}
