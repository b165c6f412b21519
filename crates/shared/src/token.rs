//! Tenant bearer tokens (T2): generated here, shown once, stored only as a
//! SHA-256 hash, compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &str = "scimflow_";

/// A fresh token: 32 random bytes, hex-encoded, with a recognisable prefix
/// so that secret scanners can find leaked ones.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    // The thread's generator is a CSPRNG seeded from the OS.
    rand::fill(&mut bytes);
    format!("{PREFIX}{}", hex::encode(bytes))
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Does `token` hash to `stored`? Constant time in the compared bytes.
pub fn verify(token: &str, stored: &str) -> bool {
    hash(token).as_bytes().ct_eq(stored.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t2_tokens_are_random_and_verify_only_against_their_hash() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64);
        assert!(verify(&a, &hash(&a)));
        assert!(!verify(&b, &hash(&a)));
        assert!(!hash(&a).contains(&a[PREFIX.len()..]));
    }
}
