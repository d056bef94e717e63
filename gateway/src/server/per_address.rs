//! How many connections one client address may hold open at once. Trusted proxies are not
//! capped: every client behind them arrives on their connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::http::client::TrustedProxies;
use crate::limits::address_key;

#[derive(Clone)]
pub struct ConnectionCap {
    per_address: usize,
    trusted: TrustedProxies,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One admitted connection; its address's count goes down when it drops.
pub struct Slot {
    key: Option<String>,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl ConnectionCap {
    pub fn new(per_address: usize, trusted: TrustedProxies) -> ConnectionCap {
        ConnectionCap { per_address: per_address.max(1), trusted, open: Arc::default() }
    }

    /// A slot for a connection from `peer`, or `None` when its address holds its share already.
    pub fn admit(&self, peer: IpAddr) -> Option<Slot> {
        if self.trusted.trusts(peer) {
            return Some(Slot { key: None, open: self.open.clone() });
        }
        let key = address_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.per_address {
            tracing::debug!("refused a connection: its address holds {count} already");
            return None;
        }
        *count += 1;
        Some(Slot { key: Some(key), open: self.open.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_holds_its_share_and_gets_a_slot_back_when_one_closes() {
        let cap = ConnectionCap::new(2, TrustedProxies::parse("10.0.0.1").unwrap());
        let first = cap.admit(ip("192.0.2.1")).unwrap();
        let _second = cap.admit(ip("192.0.2.1")).unwrap();
        assert!(cap.admit(ip("192.0.2.1")).is_none());
        // One subscriber's /64 is one address.
        let _v6 = [cap.admit(ip("2001:db8::1")).unwrap(), cap.admit(ip("2001:db8::2")).unwrap()];
        assert!(cap.admit(ip("2001:db8::3")).is_none());
        assert!(cap.admit(ip("192.0.2.2")).is_some());
        let proxy: Vec<_> = (0..10).map(|_| cap.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(proxy.len(), 10);
        drop(first);
        assert!(cap.admit(ip("192.0.2.1")).is_some());
        assert!(!cap.open.lock().unwrap().contains_key("10.0.0.1"));
    }
}
