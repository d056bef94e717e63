//! Loopback ports for the processes the tests start, and knowing when one listens.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};

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
