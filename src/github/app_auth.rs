//! GitHub App authentication: the App's private key, the JWTs it signs, and the
//! installation token they are exchanged for (see `docs/design.md#github-app`).
//!
//! GitHub's flow: a JWT signed with the App's RSA key (RS256; `iat` a minute in the
//! past against clock drift, `exp` at most ten minutes ahead, `iss` the App id)
//! authenticates as the App; `POST /app/installations/{id}/access_tokens` with it
//! returns an installation token (`{"token", "expires_at"}`, one hour) that
//! authenticates as the installation for every other call. This module holds the
//! parts that are not HTTP: the key, the signing, and the rule for when a token is
//! stale. The client in `api.rs` makes the calls.
//!
//! The signing uses `ring`, already in the build as rustls' crypto provider; the PEM is
//! read by `rustls-pki-types`. Keys, JWTs and tokens are secrets: `Debug` shows none of
//! them, and no error quotes them.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use secrecy::SecretString;
use serde::Deserialize;
use zeroize::Zeroizing;

/// How far back `iat` is set: GitHub's advice against clock drift.
const ISSUED_BEFORE: Duration = Duration::from_secs(60);
/// JWT lifetime after now: GitHub accepts at most ten minutes.
const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);
/// An installation token is replaced this long before it expires, so a request never
/// goes out with a token that dies on the way (and a slow job does not straddle it).
pub(crate) const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

/// Why `GITHUB_APP_PRIVATE_KEY` cannot be used. The text never quotes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(&'static str);

/// The App's RSA private key, parsed once. `Debug` shows only its size.
pub struct AppKey {
    pair: RsaKeyPair,
}

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AppKey({} bits, redacted)",
            self.pair.public().modulus_len() * 8
        )
    }
}

impl AppKey {
    /// Parses the key GitHub lets an App owner download: PEM, PKCS#1 (`BEGIN RSA PRIVATE
    /// KEY`); PKCS#8 (`BEGIN PRIVATE KEY`) is accepted too. An environment variable often
    /// carries the PEM with its line breaks written as `\n`; those are restored.
    pub fn from_pem(pem: &str) -> Result<AppKey, KeyError> {
        let text = Zeroizing::new(pem.trim().replace("\\n", "\n"));
        if !text.starts_with("-----BEGIN") {
            return Err(KeyError(
                "expected a PEM private key (-----BEGIN RSA PRIVATE KEY-----, as GitHub \
                 downloads it)",
            ));
        }
        let der = PrivateKeyDer::from_pem_slice(text.as_bytes())
            .map_err(|_| KeyError("the PEM text is damaged or holds no private key"))?;
        let pair = match &der {
            PrivateKeyDer::Pkcs1(key) => RsaKeyPair::from_der(key.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(key) => RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()),
            _ => return Err(KeyError("not an RSA key (GitHub App keys are RSA)")),
        }
        .map_err(|_| {
            KeyError("not a usable RSA private key (GitHub App keys are RSA, 2048 bits)")
        })?;
        Ok(AppKey { pair })
    }

    /// A JWT authenticating as App `app_id` at `now`: RS256, `iat` a minute back, `exp`
    /// nine minutes ahead.
    pub(crate) fn jwt(&self, app_id: &str, now: DateTime<Utc>) -> Result<SecretString, KeyError> {
        let now = now.timestamp();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        // A numeric App id goes as a number, as GitHub documents it; a Client ID
        // (`Iv1.…`), which GitHub also accepts as issuer, as a string.
        let issuer = match app_id.parse::<u64>() {
            Ok(id) => serde_json::Value::from(id),
            Err(_) => serde_json::Value::from(app_id),
        };
        let claims = serde_json::json!({
            "iat": now - ISSUED_BEFORE.as_secs() as i64,
            "exp": now + JWT_LIFETIME.as_secs() as i64,
            "iss": issuer,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let mut signature = vec![0u8; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| KeyError("signing the App's JWT failed"))?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// GitHub App settings, validated: the id, the key and the installation when known.
#[derive(Debug)]
pub struct AppCredentials {
    pub app_id: String,
    pub key: AppKey,
    /// Looked up from the repository (`GET /repos/{owner}/{repo}/installation`) when
    /// `None`.
    pub installation_id: Option<u64>,
}

/// `POST /app/installations/{id}/access_tokens` → 201.
#[derive(Deserialize)]
pub(crate) struct TokenGrant {
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
}

/// `GET /repos/{owner}/{repo}/installation` → 200 (only the field Valine reads).
#[derive(Deserialize)]
pub(crate) struct Installation {
    pub id: u64,
}

/// An installation token in use, with the number of the grant it came from: a request
/// refused with it invalidates exactly that grant, not a newer one another request
/// already fetched.
#[derive(Clone)]
pub(crate) struct InstallationToken {
    pub grant: u64,
    pub installation_id: u64,
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
}

impl InstallationToken {
    /// Whether it may still be sent at `now`: not within [`REFRESH_BEFORE`] of its end.
    pub fn fresh_at(&self, now: DateTime<Utc>) -> bool {
        let margin = chrono::Duration::from_std(REFRESH_BEFORE).unwrap_or_default();
        now < self.expires_at - margin
    }
}

/// What the client remembers between requests; behind an async mutex, so one request
/// refreshes while the others wait for its token.
#[derive(Default)]
pub(crate) struct TokenState {
    pub installation_id: Option<u64>,
    pub current: Option<InstallationToken>,
    pub grants: u64,
}

impl TokenState {
    /// The token to use at `now`, unless it is stale or is the one `refused` names.
    pub fn usable(&self, now: DateTime<Utc>, refused: Option<u64>) -> Option<InstallationToken> {
        self.current
            .as_ref()
            .filter(|t| t.fresh_at(now) && Some(t.grant) != refused)
            .cloned()
    }

    /// Records a new grant and returns it as the token in use.
    pub fn replace(&mut self, grant: TokenGrant, installation_id: u64) -> InstallationToken {
        self.grants += 1;
        let token = InstallationToken {
            grant: self.grants,
            installation_id,
            token: grant.token,
            expires_at: grant.expires_at,
        };
        self.current = Some(token.clone());
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use secrecy::ExposeSecret;

    /// The test-only key pair committed under `fixtures/` (never used anywhere real).
    pub(crate) const TEST_KEY: &str = include_str!("fixtures/test-app-key.pem");
    const TEST_PUBLIC_DER: &[u8] = include_bytes!("fixtures/test-app-key.pub.der");

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_jwt_is_rs256_signed_with_the_documented_claims() {
        let key = AppKey::from_pem(TEST_KEY).unwrap();
        let jwt = key.jwt("12345", at(1_700_000_000)).unwrap();
        let jwt = jwt.expose_secret();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT"}));
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"iat": 1_699_999_940, "exp": 1_700_000_540, "iss": 12345})
        );
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, TEST_PUBLIC_DER)
            .verify(signed.as_bytes(), &signature)
            .expect("the signature verifies with the App's public key");
        // A client ID as issuer stays a string.
        let jwt = key.jwt("Iv1.abc123", at(0)).unwrap();
        let claims = jwt.expose_secret().split('.').nth(1).unwrap().to_owned();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["iss"], "Iv1.abc123");
    }

    #[test]
    fn keys_are_read_from_pem_with_escaped_newlines_and_never_shown() {
        let escaped = TEST_KEY.trim().replace('\n', "\\n");
        let key = AppKey::from_pem(&escaped).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "AppKey(2048 bits, redacted)");
        for bad in [
            "",
            "not a key",
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        ] {
            let err = AppKey::from_pem(bad).unwrap_err();
            assert!(!err.to_string().contains("AAAA"), "{err}");
        }
    }

    #[test]
    fn a_token_is_replaced_five_minutes_before_it_expires() {
        let mut state = TokenState::default();
        let token = state.replace(
            TokenGrant {
                token: SecretString::from("ghs_one"),
                expires_at: at(3_600),
            },
            7,
        );
        assert_eq!(token.grant, 1);
        assert!(state.usable(at(0), None).is_some());
        assert!(state.usable(at(3_299), None).is_some());
        assert!(
            state.usable(at(3_300), None).is_none(),
            "stale 5 minutes early"
        );
        // A token that was refused is not handed out again, but a newer one is.
        assert!(state.usable(at(0), Some(1)).is_none());
        state.replace(
            TokenGrant {
                token: SecretString::from("ghs_two"),
                expires_at: at(7_200),
            },
            7,
        );
        let fresh = state.usable(at(0), Some(1)).unwrap();
        assert_eq!(fresh.token.expose_secret(), "ghs_two");
    }
}
