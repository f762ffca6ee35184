//! nftables rules of a test's own, for firewall scenarios in the shared
//! test namespace (scripts/test.sh): each table is named after the ports it
//! blocks (every test server has its own media port) and removed on drop.

use crate::media_ip;

/// An nftables table of this test's own (all tests share one namespace):
/// drops UDP to each of `ports` from every source port outside `allowed`;
/// removed on drop.
pub struct NftBlock(String);

pub fn nft(args: &str) -> String {
    let out = std::process::Command::new("nft")
        .args(args.split_whitespace())
        .output()
        .expect("nft (package nftables) is installed");
    assert!(
        out.status.success(),
        "nft {args}: {}",
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
