//! Sealing a value for GitHub Actions secrets.
//!
//! GitHub accepts a secret only encrypted with the repository's public key as a libsodium
//! sealed box (`crypto_box_seal`), base64-encoded:
//!
//! 1. a fresh ephemeral X25519 key pair;
//! 2. nonce = BLAKE2b with a 24-byte output over `ephemeral_pk ‖ recipient_pk`;
//! 3. box key = HSalsa20(X25519(ephemeral_sk, recipient_pk), zero input) (`crypto_box_beforenm`);
//! 4. XSalsa20-Poly1305 (`crypto_secretbox`): the first 32 bytes of the keystream key
//!    Poly1305, the rest encrypts the message, and the tag covers the ciphertext;
//! 5. output = `ephemeral_pk ‖ tag ‖ ciphertext`.
//!
//! It is built from the RustCrypto primitives of the generation the rest of the tree
//! uses (curve25519-dalek 5, blake2 0.11, salsa20 0.11, poly1305 0.9) rather than the
//! `crypto_box` crate, whose released version pulls in an older generation of all of
//! them. A known-answer test computed with libsodium keeps it byte-compatible. Valine
//! never stores or logs anything but the sealed form it sends.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use blake2::digest::consts::{U10, U24};
use blake2::{Blake2b, Digest};
use curve25519_dalek::montgomery::MontgomeryPoint;
use poly1305::Poly1305;
use poly1305::universal_hash::KeyInit;
use ring::rand::SecureRandom;
use salsa20::XSalsa20;
use salsa20::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroizing;

use super::error::GitHubError;

/// X25519 keys, Poly1305 one-time keys and box keys are all 32 bytes.
const KEY_LEN: usize = 32;

/// Seals `plaintext` for the repository whose base64 public key is `public_key_b64`,
/// and returns the base64 text GitHub expects as `encrypted_value`.
pub(crate) fn seal(public_key_b64: &str, plaintext: &[u8]) -> Result<String, GitHubError> {
    let recipient = parse_public_key(public_key_b64)?;
    let mut ephemeral = Zeroizing::new([0u8; KEY_LEN]);
    ring::rand::SystemRandom::new()
        .fill(ephemeral.as_mut())
        .map_err(|_| GitHubError::Decode {
            detail: "no randomness from the operating system to seal the secret".into(),
        })?;
    Ok(STANDARD.encode(seal_with(&recipient, &ephemeral, plaintext)))
}

fn parse_public_key(public_key_b64: &str) -> Result<[u8; KEY_LEN], GitHubError> {
    let unusable = || GitHubError::Decode {
        detail: "the repository's public key is not a base64 X25519 key".into(),
    };
    let bytes = STANDARD
        .decode(public_key_b64.trim())
        .map_err(|_| unusable())?;
    bytes.try_into().map_err(|_| unusable())
}

/// The sealed box of `plaintext` for `recipient`, with the given ephemeral secret key
/// (random in [`seal`], fixed in the known-answer test).
fn seal_with(recipient: &[u8; KEY_LEN], ephemeral_sk: &[u8; KEY_LEN], plaintext: &[u8]) -> Vec<u8> {
    let ephemeral_pk = MontgomeryPoint::mul_base_clamped(*ephemeral_sk).to_bytes();
    let nonce = sealed_box_nonce(&ephemeral_pk, recipient);
    let key = box_key(ephemeral_sk, recipient);

    // One keystream for both: its first 32 bytes are the Poly1305 key, the rest
    // encrypts the message (libsodium's crypto_secretbox_xsalsa20poly1305).
    let mut stream = Zeroizing::new(vec![0u8; KEY_LEN + plaintext.len()]);
    stream[KEY_LEN..].copy_from_slice(plaintext);
    XSalsa20::new(&(*key).into(), &nonce.into()).apply_keystream(&mut stream);
    let (poly_key, ciphertext) = stream.split_at(KEY_LEN);
    let poly_key: [u8; KEY_LEN] = poly_key.try_into().expect("split at KEY_LEN");
    let tag = Poly1305::new(&poly_key.into()).compute_unpadded(ciphertext);

    let mut out = Vec::with_capacity(KEY_LEN + tag.len() + ciphertext.len());
    out.extend_from_slice(&ephemeral_pk);
    out.extend_from_slice(&tag);
    out.extend_from_slice(ciphertext);
    out
}

/// libsodium's sealed-box nonce: BLAKE2b-192 of both public keys.
fn sealed_box_nonce(ephemeral_pk: &[u8; KEY_LEN], recipient: &[u8; KEY_LEN]) -> [u8; 24] {
    let mut hash = Blake2b::<U24>::new();
    hash.update(ephemeral_pk);
    hash.update(recipient);
    hash.finalize().into()
}

/// `crypto_box_beforenm`: HSalsa20 of the X25519 shared secret, with a zero input.
fn box_key(secret: &[u8; KEY_LEN], public: &[u8; KEY_LEN]) -> Zeroizing<[u8; KEY_LEN]> {
    let shared = Zeroizing::new(MontgomeryPoint(*public).mul_clamped(*secret).to_bytes());
    let key = salsa20::hsalsa::<U10>(&(*shared).into(), &[0u8; 16].into());
    Zeroizing::new(key.into())
}

/// The public key of an X25519 secret key: what GitHub publishes for a repository.
/// For tests, which play the repository.
#[cfg(any(test, feature = "conformance"))]
pub fn public_key(secret: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

/// `crypto_box_seal_open`: the repository's side, for tests that check what Valine
/// sealed. `None` when the box was not sealed for this key or was altered.
#[cfg(any(test, feature = "conformance"))]
pub fn open(recipient_sk: &[u8; KEY_LEN], sealed: &[u8]) -> Option<Vec<u8>> {
    const TAG_LEN: usize = 16;
    if sealed.len() < KEY_LEN + TAG_LEN {
        return None;
    }
    let (ephemeral_pk, rest) = sealed.split_at(KEY_LEN);
    let (tag, ciphertext) = rest.split_at(TAG_LEN);
    let ephemeral_pk: [u8; KEY_LEN] = ephemeral_pk.try_into().ok()?;
    let nonce = sealed_box_nonce(&ephemeral_pk, &public_key(recipient_sk));
    let key = box_key(recipient_sk, &ephemeral_pk);
    let mut stream = vec![0u8; KEY_LEN + ciphertext.len()];
    stream[KEY_LEN..].copy_from_slice(ciphertext);
    XSalsa20::new(&(*key).into(), &nonce.into()).apply_keystream(&mut stream);
    let poly_key: [u8; KEY_LEN] = stream[..KEY_LEN].try_into().ok()?;
    let expected = Poly1305::new(&poly_key.into()).compute_unpadded(ciphertext);
    (expected.as_slice() == tag).then(|| stream[KEY_LEN..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_key(seed: u8) -> ([u8; KEY_LEN], String) {
        let secret = [seed; KEY_LEN];
        (secret, STANDARD.encode(public_key(&secret)))
    }

    #[test]
    fn matches_libsodium_byte_for_byte() {
        // Computed once with libsodium through PyNaCl 1.6.2:
        // recipient_sk = bytes(1..=32), ephemeral_sk = bytes(101..=132),
        // nonce = blake2b(eph_pk + recipient_pk, digest_size=24),
        // sealed = eph_pk + nacl.bindings.crypto_box(msg, nonce, recipient_pk, eph_sk),
        // and crypto_box_seal_open(sealed, recipient_pk, recipient_sk) returned msg.
        let recipient_sk: [u8; KEY_LEN] = std::array::from_fn(|i| i as u8 + 1);
        let ephemeral_sk: [u8; KEY_LEN] = std::array::from_fn(|i| i as u8 + 101);
        let recipient_pk = public_key(&recipient_sk);
        assert_eq!(
            hex::encode(recipient_pk),
            "07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c"
        );
        let sealed = seal_with(&recipient_pk, &ephemeral_sk, b"https://api.example.com");
        assert_eq!(
            hex::encode(&sealed),
            "5714769d116bf76436ae74bc793d2c30ad1903c59ac5273805c7e2698b410c36\
             306ff63a8d7050294957511cc0eb3482\
             49ea5712703fb3297b8c529dac0fdf9e86019ebde5fcee"
        );
        assert_eq!(
            open(&recipient_sk, &sealed).unwrap(),
            b"https://api.example.com"
        );
    }

    #[test]
    fn sealed_value_opens_with_the_repository_key_only() {
        let (secret, public) = repo_key(7);
        let sealed = STANDARD
            .decode(seal(&public, b"https://api.example.com").unwrap())
            .unwrap();
        assert_eq!(open(&secret, &sealed).unwrap(), b"https://api.example.com");
        // Ephemeral keys: sealing twice never gives the same text.
        assert_ne!(seal(&public, b"x").unwrap(), seal(&public, b"x").unwrap());
        let (other, _) = repo_key(9);
        assert!(open(&other, &sealed).is_none());
        // A flipped bit of the ciphertext fails the tag.
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&secret, &tampered).is_none());
        // The empty value seals too (a tag and nothing else).
        let empty = STANDARD.decode(seal(&public, b"").unwrap()).unwrap();
        assert_eq!(empty.len(), KEY_LEN + 16);
        assert_eq!(open(&secret, &empty).unwrap(), b"");
    }

    #[test]
    fn a_malformed_key_is_a_decode_error() {
        // The contract's example key decodes to 33 bytes: not an X25519 key.
        let err = seal("2Sg8iYjAxxmI2LvUXpJjkYrMxURPc8r+dB7TJyvv1234", b"x").unwrap_err();
        assert_eq!(err.error_type(), "github_decode");
        assert!(seal("not base64!", b"x").is_err());
    }
}
