//! HTTP clients built on first use.
//!
//! Building a `reqwest::Client` loads the system's root certificates (a hundred-odd
//! files, several milliseconds), which `valine serve`'s start-up and a Lambda cold start
//! should not pay for clients a process may not use before its first job: an HTTP
//! function only acknowledges interactions. The first call builds the client; every
//! later call, and every clone of the adapter holding it, shares that one (and its
//! connection pool). A build failure is kept and returned by every call.

use std::fmt;
use std::sync::{Arc, OnceLock};

type Make = Box<dyn Fn() -> reqwest::ClientBuilder + Send + Sync>;

/// A `reqwest::Client` made from `make` on first use.
pub struct LazyClient {
    make: Make,
    client: OnceLock<Result<reqwest::Client, Arc<reqwest::Error>>>,
}

impl LazyClient {
    pub fn new(make: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static) -> Self {
        LazyClient {
            make: Box::new(make),
            client: OnceLock::new(),
        }
    }

    /// The client, built now if this is the first call.
    pub fn get(&self) -> Result<&reqwest::Client, Arc<reqwest::Error>> {
        self.client
            .get_or_init(|| (self.make)().build().map_err(Arc::new))
            .as_ref()
            .map_err(Arc::clone)
    }

    /// Whether the client has been built (for tests of start-up work).
    pub fn is_built(&self) -> bool {
        self.client.get().is_some()
    }
}

impl fmt::Debug for LazyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyClient")
            .field("built", &self.is_built())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_client_is_built_once_on_first_use() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let made = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&made);
        let lazy = LazyClient::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            reqwest::Client::builder().no_proxy()
        });
        assert!(!lazy.is_built());
        assert_eq!(made.load(Ordering::SeqCst), 0, "nothing built before use");
        lazy.get().expect("builds");
        lazy.get().expect("same client");
        assert!(lazy.is_built());
        assert_eq!(made.load(Ordering::SeqCst), 1);
    }
}
