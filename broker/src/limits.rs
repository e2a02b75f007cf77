//! Limits per source address, checked when a connection is accepted: how many connections
//! one IP address may hold open, and how fast it may open new ones (a token bucket that
//! allows a burst of `rate` and refills `rate` per second). The map holds only addresses
//! with open connections or recent connects, so it stays small.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

struct Addr {
    open: usize,
    tokens: f64,
    refilled: Instant,
}

/// Why an address may not connect now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    TooMany,
    TooFast,
}

pub(crate) struct AddressLimits {
    max_open: usize,
    rate: f64,
    addrs: Mutex<HashMap<IpAddr, Addr>>,
}

/// Held while a connection is open; releases its slot when dropped.
pub(crate) struct AddrSlot {
    limits: Arc<AddressLimits>,
    ip: IpAddr,
}

impl AddressLimits {
    pub fn new(max_open: usize, rate: u32) -> Arc<AddressLimits> {
        Arc::new(AddressLimits {
            max_open,
            rate: f64::from(rate.max(1)),
            addrs: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection from `ip`, or why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<AddrSlot, Refusal> {
        let now = Instant::now();
        let mut addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        if addrs.len() > 4096 {
            let rate = self.rate;
            addrs.retain(|_, a| a.open > 0 || refill(a, rate, now) < rate);
        }
        let a = addrs.entry(ip).or_insert(Addr {
            open: 0,
            tokens: self.rate,
            refilled: now,
        });
        refill(a, self.rate, now);
        if a.open >= self.max_open {
            return Err(Refusal::TooMany);
        }
        if a.tokens < 1.0 {
            return Err(Refusal::TooFast);
        }
        a.tokens -= 1.0;
        a.open += 1;
        Ok(AddrSlot {
            limits: self.clone(),
            ip,
        })
    }
}

/// Adds the tokens earned since the last refill; returns the tokens now.
fn refill(a: &mut Addr, rate: f64, now: Instant) -> f64 {
    let earned = now.duration_since(a.refilled).as_secs_f64() * rate;
    a.tokens = (a.tokens + earned).min(rate);
    a.refilled = now;
    a.tokens
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        let mut addrs = self.limits.addrs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = addrs.get_mut(&self.ip) {
            a.open = a.open.saturating_sub(1);
            if a.open == 0 && a.tokens >= self.limits.rate {
                addrs.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_connections_and_rate_per_address() {
        let l = AddressLimits::new(2, 3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = l.admit(ip).unwrap();
        let b = l.admit(ip).unwrap();
        assert_eq!(l.admit(ip).err(), Some(Refusal::TooMany));
        assert!(l.admit("10.0.0.2".parse().unwrap()).is_ok(), "per address");
        drop(a);
        let _c = l.admit(ip).unwrap();
        drop(b);
        // The burst of 3 is spent.
        assert_eq!(l.admit(ip).err(), Some(Refusal::TooFast));
    }
}
