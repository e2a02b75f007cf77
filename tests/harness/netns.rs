//! Network namespaces joined to the root namespace by a veth pair: another machine on
//! the LAN (a Raspberry Pi) for system tests. The root side gets `10.X.N.1/24`, the
//! namespace `10.X.N.2/24`. Creating them needs root (CAP_NET_ADMIN), which CI has; both
//! go away when the `Netns` is dropped.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Netns {
    pub name: String,
    /// The root namespace's address on the link (where a hub listens).
    pub host_ip: Ipv4Addr,
    /// The namespace's own address.
    pub ns_ip: Ipv4Addr,
    veth: String,
}

fn ip(args: &[&str]) {
    if let Err(e) = try_ip(args) {
        panic!("{e}");
    }
}

fn try_ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("the ip command (iproute2): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {} (network namespaces need root)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Can this process make network namespaces (root, iproute2)?
pub fn available() -> bool {
    let probe = format!("hcprobe{}", std::process::id() % 100_000);
    let ok = try_ip(&["netns", "add", &probe]).is_ok();
    let _ = Command::new("ip").args(["netns", "del", &probe]).output();
    ok
}

/// This machine's own non-loopback IPv4 address (the one its default route uses).
pub fn lan_address() -> Option<Ipv4Addr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("10.255.255.255:9").ok()?;
    match s.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

impl Netns {
    /// A new namespace with its link up.
    pub fn create() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("hc{}n{n}", pid % 100_000);
        let veth = format!("hv{}n{n}", pid % 100_000);
        let peer = format!("{veth}p");
        let subnet = 200 + pid % 50;
        let host_ip = Ipv4Addr::new(10, subnet as u8, n as u8, 1);
        let ns_ip = Ipv4Addr::new(10, subnet as u8, n as u8, 2);
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name,
            host_ip,
            ns_ip,
            veth,
        };
        ip(&[
            "link", "add", &ns.veth, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &peer, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &ns.veth]);
        ip(&["link", "set", &ns.veth, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{ns_ip}/24"), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        ns
    }

    /// Cuts the link (its root side goes down): packets stop both ways, connections stay
    /// open on both ends, as when a Raspberry Pi's Wi-Fi drops.
    pub fn cut(&self) {
        ip(&["link", "set", &self.veth, "down"]);
    }

    /// Brings the link back up.
    pub fn heal(&self) {
        ip(&["link", "set", &self.veth, "up"]);
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c.kill_on_drop(true);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
