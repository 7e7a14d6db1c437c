//! The probe client (see `docs/design.md#ssrf-policy`): one `reqwest::Client`, built
//! once on first use, that can only reach addresses the rules allow.
//!
//! Validating a URL is not enough against SSRF: a public name can resolve to
//! `169.254.169.254`, and a public page can redirect anywhere. So the client resolves
//! names itself (`CheckedResolver`), refuses the request when *any* resolved address
//! is forbidden, and hands exactly the checked addresses to the connector (the
//! connection is pinned to them; nothing resolves the name a second time). Every
//! redirect hop is re-checked with the target rules before it is followed, and IP
//! literals, which never reach a resolver, are checked against the same address policy.
//! Proxies from the environment are ignored: a proxy would connect on our behalf to
//! addresses we never saw.
//!
//! The address policy is injectable ([`ProberBuilder::address_policy`]) so tests can
//! allow one loopback address and forbid another.
//!
//! Beside the client: the rules a URL must pass to become a [`target::ProbeTarget`]
//! ([`target`]), and the expiry date read from a server certificate ([`cert`]).

pub mod cert;
pub mod target;

use std::collections::HashMap;
use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use self::target::{TargetError, TargetPolicy, check_url, is_forbidden_ip};
use crate::config::Config;
use crate::http_client::LazyClient;

/// Probe limits (see `docs/design.md#ssrf-policy`, "Limits"), starting with the connect
/// timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Per attempt, redirects and the body included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_REDIRECTS: usize = 5;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Decides whether an address may be connected to; `true` means allowed.
pub type AddressPolicy = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Why a probe produced no HTTP answer. The text is shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The URL or a redirect hop broke the target rules, or a name resolved to a
    /// forbidden address. Nothing was sent.
    #[error("refused: {0}")]
    Refused(String),
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    #[error("TLS error: {0}")]
    Tls(String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("no answer within {} s", .0.as_secs_f32())]
    Timeout(Duration),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("{0}")]
    Other(String),
}

impl ProbeError {
    /// Stable class for logs and for the report's suggested fixes.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeError::Refused(_) => "refused",
            ProbeError::Dns(_) => "dns",
            ProbeError::Tls(_) => "tls",
            ProbeError::Connect(_) => "connect",
            ProbeError::Timeout(_) => "timeout",
            ProbeError::TooManyRedirects => "redirects",
            ProbeError::Other(_) => "other",
        }
    }

    /// One retry on a connection error or a timeout, nothing else: any other answer is
    /// the target's real state.
    fn worth_retry(&self) -> bool {
        matches!(self, ProbeError::Connect(_) | ProbeError::Timeout(_))
    }
}

/// An HTTP answer to a probe, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResponse {
    pub status: u16,
    /// From sending the request to the end of the (capped) body.
    pub latency_ms: u64,
    pub cache_control: Option<String>,
    /// The URL that answered, after redirects.
    pub final_url: Url,
    pub body_bytes: usize,
    /// The body was longer than [`MAX_BODY_BYTES`]; reading stopped there.
    pub body_truncated: bool,
    /// The server's leaf certificate (DER), for https.
    pub peer_certificate: Option<Vec<u8>>,
}

impl ProbeResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Errors raised inside reqwest's resolver and redirect policy, found again in the
/// error's source chain to classify the failure.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Target(#[from] TargetError),
    #[error("{host} resolves to {ip}, a forbidden address")]
    Resolved { host: String, ip: IpAddr },
    #[error("{0} is a forbidden address")]
    Literal(IpAddr),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DnsFailure(String);

#[derive(Debug, thiserror::Error)]
#[error("more than {MAX_REDIRECTS} redirects")]
struct TooManyRedirects;

/// Resolves each name once, refuses the whole answer when any address is forbidden,
/// and returns exactly the checked addresses to connect to.
struct CheckedResolver {
    allowed: AddressPolicy,
    hosts: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = Arc::clone(&self.allowed);
        let hosts = Arc::clone(&self.hosts);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = lookup(&hosts, &host)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            if let Some(ip) = ips.iter().copied().find(|ip| !allowed(*ip)) {
                return Err(Box::new(Refusal::Resolved { host, ip }) as _);
            }
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The static table first (tests), then the system resolver.
async fn lookup(
    hosts: &HashMap<String, Vec<IpAddr>>,
    host: &str,
) -> Result<Vec<IpAddr>, DnsFailure> {
    let key = host.trim_end_matches('.').to_ascii_lowercase();
    // An address needs no lookup (reqwest connects to literals itself; this serves
    // `Prober::resolve`).
    if let Ok(ip) = key
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![ip]);
    }
    if let Some(ips) = hosts.get(&key).or_else(|| hosts.get("*")) {
        if ips.is_empty() {
            return Err(DnsFailure(format!("{host} has no addresses")));
        }
        return Ok(ips.clone());
    }
    let resolved = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, 0)))
        .await
        .map_err(|_| {
            DnsFailure(format!(
                "{host}: no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| DnsFailure(format!("{host}: {e}")))?;
    let mut ips: Vec<IpAddr> = resolved.map(|a| a.ip()).collect();
    ips.dedup();
    if ips.is_empty() {
        return Err(DnsFailure(format!("{host} has no addresses")));
    }
    Ok(ips)
}

/// Assembles a [`Prober`]; tests replace the address policy and add static names.
pub struct ProberBuilder {
    targets: TargetPolicy,
    allowed: Option<AddressPolicy>,
    hosts: HashMap<String, Vec<IpAddr>>,
    attempt_timeout: Duration,
}

impl ProberBuilder {
    /// Which addresses may be connected to. Default: any address when `SAFE_LOCAL`,
    /// else none that [`is_forbidden_ip`] names.
    pub fn address_policy(
        mut self,
        allowed: impl Fn(IpAddr) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.allowed = Some(Arc::new(allowed));
        self
    }

    /// The limit of one attempt (default [`ATTEMPT_TIMEOUT`]): `valine smoke --timeout`.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Names answered without DNS (still subject to the address policy). The name `*`
    /// answers every name not listed, so a test can keep the system resolver out
    /// entirely (an empty list makes those names fail as DNS errors).
    pub fn host(mut self, name: &str, ips: Vec<IpAddr>) -> Self {
        self.hosts.insert(name.to_ascii_lowercase(), ips);
        self
    }

    pub fn build(self) -> Result<Prober, ProbeError> {
        let safe_local = self.targets.safe_local;
        let allowed: AddressPolicy = self
            .allowed
            .unwrap_or_else(|| Arc::new(move |ip| safe_local || !is_forbidden_ip(ip)));
        let hosts = Arc::new(self.hosts.clone());
        let hop_targets = self.targets.clone();
        let hop_allowed = Arc::clone(&allowed);
        let attempt_timeout = self.attempt_timeout;
        crate::github::api::ensure_crypto_provider();
        // Built on first probe (`http_client::LazyClient`): start-up loads no root
        // certificates for it.
        let client = LazyClient::new(move || {
            let resolver = CheckedResolver {
                allowed: Arc::clone(&hop_allowed),
                hosts: Arc::clone(&hosts),
            };
            let (targets, allowed) = (hop_targets.clone(), Arc::clone(&hop_allowed));
            let redirects = reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > MAX_REDIRECTS {
                    return attempt.error(TooManyRedirects);
                }
                match check_hop(attempt.url(), &targets, &allowed) {
                    Ok(()) => attempt.follow(),
                    Err(refusal) => attempt.error(refusal),
                }
            });
            reqwest::Client::builder()
                .user_agent(format!("valine/{} (deploy verification)", crate::VERSION))
                .no_proxy()
                .dns_resolver(Arc::new(resolver))
                .redirect(redirects)
                .connect_timeout(CONNECT_TIMEOUT.min(attempt_timeout))
                .timeout(attempt_timeout)
                // A fresh connection per probe: each request resolves and is checked
                // anew, and latency samples include the handshake a visitor pays.
                .pool_max_idle_per_host(0)
                .tls_info(true)
        });
        Ok(Prober {
            inner: Arc::new(Inner {
                client,
                targets: self.targets,
                allowed,
                hosts: self.hosts,
                attempt_timeout: self.attempt_timeout,
            }),
        })
    }
}

/// A URL about to be fetched: the target rules, and the address policy for IP literals
/// (the connector connects to those without asking the resolver).
fn check_hop(url: &Url, targets: &TargetPolicy, allowed: &AddressPolicy) -> Result<(), Refusal> {
    check_url(url, targets)?;
    let literal = match url.host() {
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    match literal {
        Some(ip) if !allowed(ip) => Err(Refusal::Literal(ip)),
        _ => Ok(()),
    }
}

/// The probe client. Cheap to clone; clones share the connection settings.
#[derive(Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

struct Inner {
    client: LazyClient,
    targets: TargetPolicy,
    allowed: AddressPolicy,
    hosts: HashMap<String, Vec<IpAddr>>,
    attempt_timeout: Duration,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("targets", &self.inner.targets)
            .finish_non_exhaustive()
    }
}

impl Prober {
    pub fn builder(targets: TargetPolicy) -> ProberBuilder {
        ProberBuilder {
            targets,
            allowed: None,
            hosts: HashMap::new(),
            attempt_timeout: ATTEMPT_TIMEOUT,
        }
    }

    /// The production prober: rules from `SAFE_LOCAL` and `ALLOWED_DOMAINS`.
    pub fn from_config(config: &Config) -> Result<Prober, ProbeError> {
        Prober::builder(TargetPolicy::from_config(config)).build()
    }

    pub fn target_policy(&self) -> &TargetPolicy {
        &self.inner.targets
    }

    /// Whether the address policy allows connecting to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        (self.inner.allowed)(ip)
    }

    /// The addresses `host` resolves to, without judging them (for `/diagnose`).
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ProbeError> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        lookup(&self.inner.hosts, host)
            .await
            .map_err(|e| ProbeError::Dns(e.0))
    }

    /// `GET url`: checked, then sent, with one retry on a connection error or timeout.
    pub async fn get(&self, url: &Url) -> Result<ProbeResponse, ProbeError> {
        let request = ProbeRequest::get(url.clone());
        self.send(&request).await.map(|(response, _)| response)
    }

    /// Sends `request` as [`Prober::get`] sends a `GET` (checked, one retry on a
    /// connection error or timeout), and returns the answer with the first
    /// `request.keep_body` bytes of its body.
    pub async fn send(
        &self,
        request: &ProbeRequest,
    ) -> Result<(ProbeResponse, Vec<u8>), ProbeError> {
        let url = &request.url;
        check_hop(url, &self.inner.targets, &self.inner.allowed)
            .map_err(|e| ProbeError::Refused(e.to_string()))?;
        let first = self.attempt(request).await;
        let outcome = match first {
            Err(e) if e.worth_retry() => self.attempt(request).await,
            other => other,
        };
        match &outcome {
            Ok((r, _)) => tracing::info!(
                probe_url = %url,
                probe_method = %request.method,
                probe_status = r.status,
                probe_ms = r.latency_ms,
                "probe"
            ),
            Err(e) => tracing::warn!(
                probe_url = %url,
                probe_method = %request.method,
                error.type = e.kind(),
                error.message = %e,
                "probe failed"
            ),
        }
        outcome
    }

    async fn attempt(
        &self,
        request: &ProbeRequest,
    ) -> Result<(ProbeResponse, Vec<u8>), ProbeError> {
        let started = Instant::now();
        // reqwest's timeout covers the body too; this bound also holds while the body
        // is streamed in chunks.
        match tokio::time::timeout(self.inner.attempt_timeout, self.exchange(request, started))
            .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err(ProbeError::Timeout(self.inner.attempt_timeout)),
        }
    }

    async fn exchange(
        &self,
        request: &ProbeRequest,
        started: Instant,
    ) -> Result<(ProbeResponse, Vec<u8>), ProbeError> {
        let client = self
            .inner
            .client
            .get()
            .map_err(|e| ProbeError::Other(format!("cannot build the probe client: {e}")))?;
        let mut builder = client.request(request.method.clone(), request.url.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| classify(e, self.inner.attempt_timeout))?;
        let status = response.status().as_u16();
        let cache_control = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let final_url = response.url().clone();
        let peer_certificate = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .map(<[u8]>::to_vec);
        let mut body_bytes = 0usize;
        let mut body_truncated = false;
        let mut kept = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| classify(e, self.inner.attempt_timeout))?
        {
            let room = request.keep_body.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
            body_bytes += chunk.len();
            if body_bytes >= MAX_BODY_BYTES {
                // Dropping the response closes the connection; the rest is never read.
                body_truncated = body_bytes > MAX_BODY_BYTES;
                body_bytes = body_bytes.min(MAX_BODY_BYTES);
                break;
            }
        }
        let response = ProbeResponse {
            status,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            cache_control,
            final_url,
            body_bytes,
            body_truncated,
            peer_certificate,
        };
        Ok((response, kept))
    }
}

/// One request for [`Prober::send`].
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    pub method: reqwest::Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    /// How many bytes of the answer's body to return (the rest is counted, not kept).
    pub keep_body: usize,
}

impl ProbeRequest {
    pub fn get(url: Url) -> ProbeRequest {
        ProbeRequest {
            method: reqwest::Method::GET,
            url,
            headers: Vec::new(),
            body: None,
            keep_body: 0,
        }
    }
}

/// Turns reqwest's error into what a user can act on, using the errors our resolver and
/// redirect policy raised where they are in the source chain.
fn classify(error: reqwest::Error, timeout: Duration) -> ProbeError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.source();
    let mut texts = Vec::new();
    while let Some(e) = source {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return ProbeError::Refused(refusal.to_string());
        }
        if let Some(dns) = e.downcast_ref::<DnsFailure>() {
            return ProbeError::Dns(dns.0.clone());
        }
        if e.downcast_ref::<TooManyRedirects>().is_some() {
            return ProbeError::TooManyRedirects;
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return ProbeError::Tls(tls.to_string());
        }
        // io::Error::source skips its payload; look inside for rustls' error.
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return ProbeError::Tls(tls.to_string());
        }
        texts.push(e.to_string());
        source = e.source();
    }
    let (timed_out, connect) = (error.is_timeout(), error.is_connect());
    let detail = texts
        .last()
        .cloned()
        .unwrap_or_else(|| error.without_url().to_string());
    if timed_out {
        ProbeError::Timeout(timeout)
    } else if connect {
        ProbeError::Connect(detail)
    } else {
        ProbeError::Other(detail)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::get;

    use super::*;

    async fn serve_on(ip: &str, router: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        addr
    }

    /// A server on 127.0.0.2 (the address the tests forbid) that counts the requests
    /// reaching it: a probe that gets there is the leak the client must prevent.
    async fn forbidden_server() -> (SocketAddr, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let addr = serve_on(
            "127.0.0.2",
            Router::new().fallback(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "secret" }
            }),
        )
        .await;
        (addr, hits)
    }

    fn local() -> TargetPolicy {
        TargetPolicy {
            safe_local: true,
            allowed_domains: Vec::new(),
        }
    }

    fn only_first_loopback() -> ProberBuilder {
        let allowed: IpAddr = "127.0.0.1".parse().unwrap();
        Prober::builder(local()).address_policy(move |ip| ip == allowed)
    }

    #[tokio::test]
    async fn answers_report_status_headers_and_latency() {
        let addr = serve_on(
            "127.0.0.1",
            Router::new().route(
                "/index.html",
                get(|| async {
                    let mut headers = HeaderMap::new();
                    headers.insert(header::CACHE_CONTROL, "no-cache".parse().unwrap());
                    (StatusCode::IM_A_TEAPOT, headers, "short and stout")
                }),
            ),
        )
        .await;
        let prober = Prober::builder(local()).build().unwrap();
        let url = Url::parse(&format!("http://{addr}/index.html")).unwrap();
        let r = prober.get(&url).await.unwrap();
        assert_eq!(r.status, 418);
        assert!(!r.is_success());
        assert_eq!(r.cache_control.as_deref(), Some("no-cache"));
        assert_eq!(r.body_bytes, "short and stout".len());
        assert!(r.peer_certificate.is_none());
    }

    #[tokio::test]
    async fn without_safe_local_loopback_and_http_are_refused_before_sending() {
        let prober = Prober::builder(TargetPolicy::default()).build().unwrap();
        let err = prober
            .get(&Url::parse("https://127.0.0.1:1/").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Refused(_)), "{err:?}");
        let err = prober
            .get(&Url::parse("http://example.com/").unwrap())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("only https"), "{err}");
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_forbidden_address_is_refused_at_connect_time() {
        let (forbidden, hits) = forbidden_server().await;
        let prober = only_first_loopback()
            .host("evil.test", vec!["127.0.0.2".parse().unwrap()])
            // Any forbidden address among the answers refuses the name.
            .host(
                "mixed.test",
                vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()],
            )
            .build()
            .unwrap();
        for name in ["evil.test", "mixed.test"] {
            let url = Url::parse(&format!("http://{name}:{}/", forbidden.port())).unwrap();
            let err = prober.get(&url).await.unwrap_err();
            assert!(
                matches!(&err, ProbeError::Refused(m) if m.contains("127.0.0.2")),
                "{name}: {err:?}"
            );
        }
        // The literal never reaches a resolver; it is checked all the same.
        let err = prober
            .get(&Url::parse(&format!("http://{forbidden}/")).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Refused(_)), "{err:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached 127.0.0.2");
    }

    #[tokio::test]
    async fn redirects_are_rechecked_per_hop_and_limited() {
        let (forbidden, hits) = forbidden_server().await;
        let target = format!("http://evil.test:{}/meta", forbidden.port());
        let literal = format!("http://{forbidden}/meta");
        let allowed = serve_on(
            "127.0.0.1",
            Router::new()
                .route(
                    "/to-name",
                    get(move || async move { axum::response::Redirect::temporary(&target) }),
                )
                .route(
                    "/to-literal",
                    get(move || async move { axum::response::Redirect::temporary(&literal) }),
                )
                .route(
                    "/to-ftp",
                    get(|| async { axum::response::Redirect::temporary("ftp://example.com/") }),
                )
                .route(
                    "/loop",
                    get(|| async { axum::response::Redirect::temporary("/loop") }),
                )
                .route(
                    "/hop",
                    get(|| async { axum::response::Redirect::temporary("/ok") }),
                )
                .route("/ok", get(|| async { "fine" })),
        )
        .await;
        let prober = only_first_loopback()
            .host("evil.test", vec!["127.0.0.2".parse().unwrap()])
            .build()
            .unwrap();
        let url = |path: &str| Url::parse(&format!("http://{allowed}{path}")).unwrap();
        for path in ["/to-name", "/to-literal", "/to-ftp"] {
            let err = prober.get(&url(path)).await.unwrap_err();
            assert!(matches!(err, ProbeError::Refused(_)), "{path}: {err:?}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0, "no hop reached 127.0.0.2");
        assert_eq!(
            prober.get(&url("/loop")).await.unwrap_err(),
            ProbeError::TooManyRedirects
        );
        let ok = prober.get(&url("/hop")).await.unwrap();
        assert_eq!(ok.status, 200);
        assert_eq!(ok.final_url.path(), "/ok");
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_one_mebibyte() {
        let addr = serve_on(
            "127.0.0.1",
            Router::new().route("/big", get(|| async { vec![b'x'; 3 * MAX_BODY_BYTES] })),
        )
        .await;
        let prober = Prober::builder(local()).build().unwrap();
        let r = prober
            .get(&Url::parse(&format!("http://{addr}/big")).unwrap())
            .await
            .unwrap();
        assert_eq!(r.body_bytes, MAX_BODY_BYTES);
        assert!(r.body_truncated);
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_once_then_reported() {
        // Bind then drop: the port is closed, so connecting fails at once.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let prober = Prober::builder(local()).build().unwrap();
        let err = prober
            .get(&Url::parse(&format!("http://{addr}/")).unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Connect(_)), "{err:?}");
        assert_eq!(err.kind(), "connect");
    }

    #[tokio::test]
    async fn unknown_names_are_dns_errors() {
        // A name without addresses, from the static table: tests never query a real
        // resolver.
        let prober = Prober::builder(local())
            .host("known.test", vec!["127.0.0.1".parse().unwrap()])
            .host("*", vec![])
            .build()
            .unwrap();
        let err = prober
            .get(&Url::parse("http://does-not-exist.test/").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, ProbeError::Dns(_)), "{err:?}");
        assert_eq!(
            prober.resolve("known.test").await.unwrap(),
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        let ips = prober.resolve("127.0.0.1").await.unwrap();
        assert_eq!(ips, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn the_default_policy_follows_safe_local() {
        let strict = Prober::builder(TargetPolicy::default()).build().unwrap();
        assert!(!strict.allows("10.0.0.1".parse().unwrap()));
        assert!(strict.allows("8.8.8.8".parse().unwrap()));
        let relaxed = Prober::builder(local()).build().unwrap();
        assert!(relaxed.allows("10.0.0.1".parse().unwrap()));
    }
}
