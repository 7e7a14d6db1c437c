//! `valine smoke URL`: checks a deployed Valine from outside, as Discord and GitHub
//! would reach it, for CI or cron (the runbook's bot-smoke check).
//!
//! - `GET /healthz` answers Valine's health (skipped where the deployment routes no
//!   such path: the AWS template exposes only the two webhooks);
//! - an unsigned PING and a PING signed with a key that is not the application's are
//!   refused with 401 on `/discord/interactions`: a deployment that accepts either would
//!   run commands for anyone;
//! - a webhook delivery signed with a wrong secret is refused with 401 on
//!   `/github/webhook`;
//! - for `https`, the certificate's days to expiry (⚠️ under 14).
//!
//! Smoke needs no credentials: it only proves that forgeries are refused. The URL is the
//! operator's own deployment, named on the command line, so it may also be a local
//! `http://127.0.0.1:8080` (unlike the probe targets Discord users set).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use chrono::Utc;
use ed25519_dalek::Signer;
use hmac::{KeyInit, Mac};
use serde_json::Value;
use url::Url;

use super::{Check, Status};
use crate::probe::cert;
use crate::probe::target::TargetPolicy;
use crate::probe::{ProbeError, ProbeRequest, ProbeResponse, Prober};

/// A certificate expiring sooner than this is flagged.
const CERT_WARN_DAYS: i64 = 14;
/// Enough of an answer's body to read Valine's small JSON bodies.
const KEEP_BODY: usize = 4096;

/// The base URL, checked: http(s), a host, no query, no credentials.
pub fn parse_url(input: &str) -> Result<Url, String> {
    let url = Url::parse(input.trim()).map_err(|e| format!("{input:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{input:?}: expected an http(s) URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not carry a user name or password".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must not have a query or fragment".to_owned());
    }
    Ok(url)
}

/// `path` under `base`, keeping a base path (`https://x/prod` + `/healthz`).
fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url
}

/// The prober smoke checks go through: the operator names the deployment, so local
/// and private addresses are allowed.
fn prober(timeout: Duration) -> Result<Prober, Check> {
    Prober::builder(TargetPolicy {
        safe_local: true,
        allowed_domains: Vec::new(),
    })
    .attempt_timeout(timeout)
    .build()
    .map_err(|e| Check::fail("smoke", e.to_string(), "report this as a bug"))
}

/// Runs every check against the deployment at `base`, each attempt bounded by
/// `timeout`.
pub async fn run(base: &Url, timeout: Duration) -> Vec<Check> {
    let prober = match prober(timeout) {
        Ok(prober) => prober,
        Err(check) => return vec![check],
    };
    let (healthz, unsigned, forged, webhook) = tokio::join!(
        healthz(&prober, base),
        interaction(&prober, base, false),
        interaction(&prober, base, true),
        forged_webhook(&prober, base),
    );
    let certificate = certificate(base, [&healthz.1, &unsigned.1, &forged.1, &webhook.1]);
    vec![healthz.0, unsigned.0, forged.0, webhook.0, certificate]
}

/// `valine healthcheck`: this host's own `/healthz` on the address `serve` listens on
/// (an unspecified address is asked on loopback), for a container's or a supervisor's
/// health check. Unlike smoke, a missing `/healthz` is a failure: `serve` always has one.
pub async fn local_health(listen: SocketAddr, timeout: Duration) -> Check {
    let host = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let base = match Url::parse(&format!("http://{}", SocketAddr::new(host, listen.port()))) {
        Ok(base) => base,
        Err(e) => return Check::fail("healthz", e.to_string(), "report this as a bug"),
    };
    let prober = match prober(timeout) {
        Ok(prober) => prober,
        Err(check) => return check,
    };
    match healthz(&prober, &base).await {
        (check, Some((response, _))) if response.status == 200 => check,
        (check, None) => check,
        (check, Some(_)) if check.status == Status::Fail => check,
        (_, Some((response, _))) => Check::fail(
            "healthz",
            format!("{base}healthz answered {}", response.status),
            "check that VALINE_LISTEN is the address `valine serve` listens on",
        ),
    }
}

type Answer = Option<(ProbeResponse, Vec<u8>)>;

fn unreachable(name: &'static str, url: &Url, error: &ProbeError) -> (Check, Answer) {
    (
        Check::fail(
            name,
            format!("{url}: {error}"),
            "check the URL, DNS and that the deployment is up (serve running, or the API \
             Gateway stage deployed)",
        ),
        None,
    )
}

fn json_body(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

async fn healthz(prober: &Prober, base: &Url) -> (Check, Answer) {
    let name = "smoke.healthz";
    let url = join(base, "/healthz");
    let mut request = ProbeRequest::get(url.clone());
    request.keep_body = KEEP_BODY;
    let (response, body) = match prober.send(&request).await {
        Ok(answer) => answer,
        Err(e) => return unreachable(name, &url, &e),
    };
    let health = json_body(&body);
    let field = |key: &str| {
        health
            .as_ref()
            .and_then(|h| h[key].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let is_valine = health.as_ref().is_some_and(|h| h["store"].is_string());
    let check = match response.status {
        404 => Check::ok(
            name,
            "skipped: no /healthz at this deployment (the AWS template routes only the webhooks)",
        ),
        200 if is_valine && field("status") == "ok" => Check::ok(
            name,
            format!(
                "ok: version {}, stage {}, store {}",
                field("version"),
                field("stage"),
                field("store")
            ),
        ),
        503 if is_valine => Check::fail(
            name,
            format!("503: the store cannot be reached ({})", field("error")),
            "run `valine doctor` where Valine runs; the runbook's store section has the fixes",
        ),
        status => Check::fail(
            name,
            format!("{url} answered {status}, not Valine's health"),
            "check that the URL is the base of a Valine deployment",
        ),
    };
    (check, Some((response, body)))
}

/// A PING as Discord sends it, unsigned, or signed with a key of our own making (a
/// forgery: only the application's key may be accepted).
async fn interaction(prober: &Prober, base: &Url, signed: bool) -> (Check, Answer) {
    let name = if signed {
        "smoke.forged_ping"
    } else {
        "smoke.unsigned_ping"
    };
    let url = join(base, "/discord/interactions");
    let body = br#"{"type":1,"id":"0","application_id":"0","version":1}"#.to_vec();
    let mut headers = vec![("content-type", "application/json".to_owned())];
    if signed {
        let timestamp = Utc::now().timestamp().to_string();
        let key = ed25519_dalek::SigningKey::from_bytes(&random_bytes());
        let mut message = timestamp.as_bytes().to_vec();
        message.extend_from_slice(&body);
        headers.push((
            "x-signature-ed25519",
            hex::encode(key.sign(&message).to_bytes()),
        ));
        headers.push(("x-signature-timestamp", timestamp));
    }
    let request = ProbeRequest {
        method: reqwest::Method::POST,
        url: url.clone(),
        headers,
        body: Some(body),
        keep_body: KEEP_BODY,
    };
    let what = if signed {
        "a PING signed with another key"
    } else {
        "an unsigned PING"
    };
    refused(prober, name, &url, &request, what, "DISCORD_PUBLIC_KEY").await
}

async fn forged_webhook(prober: &Prober, base: &Url) -> (Check, Answer) {
    let name = "smoke.forged_webhook";
    let url = join(base, "/github/webhook");
    let body = br#"{"zen":"valine smoke","hook_id":0}"#.to_vec();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&random_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(&body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let request = ProbeRequest {
        method: reqwest::Method::POST,
        url: url.clone(),
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("x-github-event", "ping".to_owned()),
            (
                "x-github-delivery",
                format!("valine-smoke-{}", uuid::Uuid::new_v4()),
            ),
            ("x-hub-signature-256", signature),
        ],
        body: Some(body),
        keep_body: KEEP_BODY,
    };
    refused(
        prober,
        name,
        &url,
        &request,
        "a delivery signed with another secret",
        "GITHUB_WEBHOOK_SECRET",
    )
    .await
}

/// Sends a forgery and expects Valine's 401.
async fn refused(
    prober: &Prober,
    name: &'static str,
    url: &Url,
    request: &ProbeRequest,
    what: &str,
    secret_var: &str,
) -> (Check, Answer) {
    let (response, body) = match prober.send(request).await {
        Ok(answer) => answer,
        Err(e) => return unreachable(name, url, &e),
    };
    let error = json_body(&body).and_then(|b| b["error"].as_str().map(str::to_owned));
    let check = match response.status {
        401 => Check::ok(name, format!("{what} is refused (401)")),
        503 => Check::fail(
            name,
            format!(
                "503: {}",
                error.unwrap_or_else(|| "the endpoint is unavailable".to_owned())
            ),
            format!("set {secret_var} where Valine runs"),
        ),
        status if (200..300).contains(&status) => Check::fail(
            name,
            format!("{what} was accepted ({status}): anyone can reach this endpoint"),
            format!(
                "the deployment is broken: take it out of service and check that it runs \
                 Valine with {secret_var} set"
            ),
        ),
        404 | 405 => Check::fail(
            name,
            format!("{url} answered {}: not a Valine endpoint", response.status),
            "check that the URL is the base of a Valine deployment",
        ),
        status => Check::fail(
            name,
            format!("{url} answered {status} where Valine refuses with 401"),
            "check that the URL is the base of a Valine deployment, and its logs",
        ),
    };
    (check, Some((response, body)))
}

/// Days until the certificate of the first answer that had one expires.
fn certificate(base: &Url, answers: [&Answer; 4]) -> Check {
    let name = "smoke.certificate";
    if base.scheme() != "https" {
        return Check::warn(
            name,
            "plain http: no certificate to check",
            "Discord and GitHub need an https URL; use http only for a local deployment",
        );
    }
    let Some(der) = answers
        .iter()
        .find_map(|a| a.as_ref()?.0.peer_certificate.as_deref())
    else {
        return Check::fail(
            name,
            "no answer carried a certificate",
            "see the checks above: the deployment did not answer",
        );
    };
    let Some(expiry) = cert::not_after(der) else {
        return Check::warn(
            name,
            "the certificate's expiry could not be read",
            "check it by hand (openssl s_client)",
        );
    };
    let days = cert::days_until(expiry, Utc::now());
    let found = format!("expires {} ({days} days)", expiry.format("%Y-%m-%d"));
    if days < 0 {
        Check::fail(
            name,
            found,
            "renew the certificate now: Discord refuses expired ones",
        )
    } else if days < CERT_WARN_DAYS {
        Check::warn(
            name,
            found,
            "renew the certificate (ACM renews its own; a custom domain's may need DNS \
             validation)",
        )
    } else {
        Check::ok(name, found)
    }
}

/// 32 unpredictable bytes for the forged key and secret: from two random UUIDs, so no
/// deployment can have been configured with them.
fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_paths_join_under_a_base_path() {
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("https://u:p@x").is_err());
        assert!(parse_url("https://x/?a=1").is_err());
        assert!(parse_url("not a url").is_err());
        let base = parse_url("https://abc.example.com/prod/").unwrap();
        assert_eq!(
            join(&base, "/healthz").as_str(),
            "https://abc.example.com/prod/healthz"
        );
        let base = parse_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            join(&base, "/github/webhook").as_str(),
            "http://127.0.0.1:8080/github/webhook"
        );
    }

    #[test]
    fn plain_http_warns_and_https_without_answers_fails() {
        let http = parse_url("http://127.0.0.1:1").unwrap();
        assert_eq!(
            certificate(&http, [&None, &None, &None, &None]).status,
            super::super::Status::Warn
        );
        let https = parse_url("https://example.com").unwrap();
        assert_eq!(
            certificate(&https, [&None, &None, &None, &None]).status,
            super::super::Status::Fail
        );
    }

    #[test]
    fn forged_keys_differ_each_time() {
        assert_ne!(random_bytes(), random_bytes());
    }
}
