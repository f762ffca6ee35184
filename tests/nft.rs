//! nftables rules of a test's own, for firewall and NAT scenarios in the
//! shared test namespace (scripts/test.sh): each table is named after a
//! port or address of that test's own (every test server has its own media
//! port) and removed on drop.

use crate::media_ip;

/// An nftables table of this test's own (all tests share one namespace):
/// drops UDP to each of `ports` from every source port outside `allowed`;
/// removed on drop.
pub struct NftBlock(String);

pub fn nft(args: &str) -> String {
    run("nft", "nftables", args)
}

/// Runs `program` (from Debian package `package`) with the words of
/// `args`; panics with its error output unless it succeeds.
fn run(program: &str, package: &str, args: &str) -> String {
    let out = std::process::Command::new(program)
        .args(args.split_whitespace())
        .output()
        .unwrap_or_else(|e| panic!("{program} (package {package}) is installed: {e}"));
    assert!(
        out.status.success(),
        "{program} {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl NftBlock {
    pub fn udp_to_ports_except_from(ports: &[u16], allowed: (u16, u16)) -> NftBlock {
        let table = format!("convene_turn_{}", ports[0]);
        nft(&format!("add table inet {table}"));
        nft(&format!(
            "add chain inet {table} out {{ type filter hook output priority 0 ; policy accept ; }}"
        ));
        // One rule per port (not one set), so that the listing a failed
        // probe prints shows each port's own counter.
        for port in ports {
            nft(&format!(
                "add rule inet {table} out udp dport {port} udp sport != {}-{} counter drop",
                allowed.0, allowed.1
            ));
        }
        NftBlock(table)
    }

    /// Proves the block works: a datagram from an ordinary port to `to`
    /// does not leave. Panics with the table (and its counters) otherwise.
    pub fn assert_blocks(&self, to: std::net::SocketAddr) {
        let probe = std::net::UdpSocket::bind((media_ip(), 0)).unwrap();
        if let Ok(n) = probe.send_to(b"direct", to) {
            panic!(
                "{n} bytes from {} reached {to} through the block:\n{}",
                probe.local_addr().unwrap(),
                nft(&format!("-a list table inet {}", self.0))
            );
        }
    }
}

impl Drop for NftBlock {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .status();
    }
}

/// A 1:1 NAT in front of the test namespace's media address, as a cloud
/// VM's public address is: `public` is routed here, and what is sent to it
/// from any port but the server's own goes to `inside` (the reply comes
/// back from `public`). The server's own ports (`own`: its relay range and
/// its media port) are not translated: what they send to `public` is lost,
/// as on a network that does not hairpin. Removed on drop.
pub struct OneToOneNat {
    table: String,
    public: std::net::Ipv4Addr,
}

impl OneToOneNat {
    pub fn new(public: std::net::Ipv4Addr, inside: std::net::Ipv4Addr, own: &[(u16, u16)]) -> Self {
        let table = format!("convene_nat_{}", u32::from(public));
        let own = own
            .iter()
            .map(|(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        // Routed over loopback, and not one of this namespace's addresses:
        // what is not translated finds nobody.
        run("ip", "iproute2", &format!("route add {public}/32 dev lo"));
        let nat = OneToOneNat { table, public };
        let t = &nat.table;
        nft(&format!("add table ip {t}"));
        nft(&format!(
            "add chain ip {t} out {{ type nat hook output priority -100 ; policy accept ; }}"
        ));
        for proto in ["udp", "tcp"] {
            nft(&format!(
                "add rule ip {t} out ip daddr {public} {proto} sport != {{ {own} }} counter dnat to {inside}"
            ));
        }
        nat
    }

    /// The rules with their counters, for a failure's message.
    pub fn listing(&self) -> String {
        nft(&format!("-a list table ip {}", self.table))
    }
}

impl Drop for OneToOneNat {
    fn drop(&mut self) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["route", "del", &format!("{}/32", self.public), "dev", "lo"])
            .status();
    }
}
