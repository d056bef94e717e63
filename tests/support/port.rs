//! Loopback ports for the processes the tests start, and knowing when one listens.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A port nothing holds now, for a process that binds it once started.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether something listens on `port`. A connection to a port nobody holds can, rarely,
/// succeed on its own: when the kernel picks that same port as the source, the SYN meets
/// itself (a simultaneous open), and a bare `connect` would take the process as started.
pub fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok())
}

/// Waits until `what` listens on `port`, failing the test after `limit`.
pub fn wait_until_listening(port: u16, limit: Duration, what: &str) {
    let started = Instant::now();
    while !listening(port) {
        assert!(started.elapsed() < limit, "{what} did not listen on {port} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
