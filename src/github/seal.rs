//! Sealing a value for GitHub Actions secrets.
//!
//! GitHub accepts a secret only encrypted with the repository's public key as a libsodium
//! sealed box (`crypto_box_seal`: an ephemeral X25519 key, XSalsa20-Poly1305, nonce from
//! BLAKE2b of both public keys), base64-encoded. `crypto_box` implements exactly that,
//! so Valine never sees or stores anything but the sealed form it sends.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_box::PublicKey;
use crypto_box::aead::OsRng;

use super::error::GitHubError;

/// Seals `plaintext` for the repository whose base64 public key is `public_key_b64`,
/// and returns the base64 text GitHub expects as `encrypted_value`.
pub(crate) fn seal(public_key_b64: &str, plaintext: &[u8]) -> Result<String, GitHubError> {
    let unusable = || GitHubError::Decode {
        detail: "the repository's public key is not a base64 X25519 key".into(),
    };
    let key_bytes = STANDARD
        .decode(public_key_b64.trim())
        .map_err(|_| unusable())?;
    let key = PublicKey::from_slice(&key_bytes).map_err(|_| unusable())?;
    let sealed = key
        .seal(&mut OsRng, plaintext)
        .map_err(|_| GitHubError::Decode {
            detail: "sealing the secret failed".into(),
        })?;
    Ok(STANDARD.encode(sealed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_box::SecretKey;

    #[test]
    fn sealed_value_opens_with_the_repository_key_only() {
        let repo_key = SecretKey::generate(&mut OsRng);
        let public = STANDARD.encode(repo_key.public_key().as_bytes());
        let sealed = seal(&public, b"https://api.example.com").unwrap();
        let opened = repo_key.unseal(&STANDARD.decode(&sealed).unwrap()).unwrap();
        assert_eq!(opened, b"https://api.example.com");
        // Ephemeral keys: sealing twice never gives the same text.
        assert_ne!(seal(&public, b"x").unwrap(), seal(&public, b"x").unwrap());
        let other = SecretKey::generate(&mut OsRng);
        assert!(other.unseal(&STANDARD.decode(&sealed).unwrap()).is_err());
    }

    #[test]
    fn a_malformed_key_is_a_decode_error() {
        // The contract's example key decodes to 33 bytes: not an X25519 key.
        let err = seal("2Sg8iYjAxxmI2LvUXpJjkYrMxURPc8r+dB7TJyvv1234", b"x").unwrap_err();
        assert_eq!(err.error_type(), "github_decode");
        assert!(seal("not base64!", b"x").is_err());
    }
}
