//! Helpers for `scripts/load`, the loopback load measurement of `valine serve`.
//!
//! The load generators only replay fixed requests, so the signing is done here with a
//! fixed test key (never a real application's), just before each run: the 300 s replay
//! window leaves plenty of time for a run of a few seconds.
//!
//! - `loadkit public-key`: the key to set as `DISCORD_PUBLIC_KEY`;
//! - `loadkit sign BODY`: `TIMESTAMP SIGNATURE` for the body, signed now;
//! - `loadkit wait-healthy HOST:PORT SINCE_NS`: polls `GET /healthz` every 0.5 ms until
//!   it answers 200 (giving up after 10 s), then prints the milliseconds since
//!   `SINCE_NS` (Unix time in nanoseconds, taken just before the server was started).

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
        ["wait-healthy", addr, since_ns] => {
            let since_ns: u128 = since_ns.parse().expect("SINCE_NS is an integer");
            let give_up = Instant::now() + Duration::from_secs(10);
            while Instant::now() < give_up {
                if healthy(addr) {
                    let now_ns = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .expect("the clock is after 1970")
                        .as_nanos();
                    println!("{:.1}", (now_ns.saturating_sub(since_ns)) as f64 / 1e6);
                    return;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            eprintln!("loadkit: {addr}/healthz did not answer 200 within 10 s");
            std::process::exit(1);
        }
        _ => {
            eprintln!("usage: loadkit public-key | sign BODY | wait-healthy HOST:PORT SINCE_NS");
            std::process::exit(2);
        }
    }
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
