//! Helpers for `scripts/load`, the loopback load measurement of `valine serve`.
//!
//! The load generators only replay fixed requests, so the signing is done here with a
//! fixed test key (never a real application's), just before each run: the 300 s replay
//! window leaves plenty of time for a run of a few seconds.
//!
//! - `loadkit public-key`: the key to set as `DISCORD_PUBLIC_KEY`;
//! - `loadkit sign BODY`: `TIMESTAMP SIGNATURE` for the body, signed now;
//! - `loadkit start VALINE HOST:PORT LOG`: starts `VALINE serve` (with loadkit's own
//!   environment, its output to LOG), polls `GET /healthz` every 0.2 ms until it answers
//!   200 (giving up after 10 s, stopping the server), then prints `PID MILLISECONDS`:
//!   the server's process id and the time from just before starting it to that answer.
//!   The server keeps running after loadkit exits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};

/// The benchmark's test key (`benches/interactions.rs`): not a secret.
const TEST_SEED: [u8; 32] = [7; 32];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let key = SigningKey::from_bytes(&TEST_SEED);
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["public-key"] => println!("{}", hex::encode(key.verifying_key().as_bytes())),
        ["sign", body] => {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("the clock is after 1970")
                .as_secs()
                .to_string();
            let message = [ts.as_bytes(), body.as_bytes()].concat();
            println!("{ts} {}", hex::encode(key.sign(&message).to_bytes()));
        }
        ["start", valine, addr, log] => start(valine, addr, log),
        _ => {
            eprintln!("usage: loadkit public-key | sign BODY | start VALINE HOST:PORT LOG");
            std::process::exit(2);
        }
    }
}

/// Starts `valine serve` and times it to its first healthy answer (see the module docs).
/// Timed here rather than by the calling script, whose own process starts would count.
fn start(valine: &str, addr: &str, log: &str) {
    let log = std::fs::File::create(log).expect("the log file can be created");
    let started = Instant::now();
    let mut server = std::process::Command::new(valine)
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("the log file"))
        .stderr(log)
        .spawn()
        .expect("valine starts");
    let give_up = started + Duration::from_secs(10);
    while Instant::now() < give_up {
        if healthy(addr) {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            println!("{} {ms:.1}", server.id());
            return;
        }
        if let Ok(Some(status)) = server.try_wait() {
            eprintln!("loadkit: valine serve exited ({status}) before it was healthy");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = server.kill();
    eprintln!("loadkit: {addr}/healthz did not answer 200 within 10 s");
    std::process::exit(1);
}

/// One `GET /healthz` on a fresh connection: true on a 200.
fn healthy(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
