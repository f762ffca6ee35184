//! The trunks a bridge serves: named sets of source addresses, each with
//! its own digest credentials or none (trusted by address alone). Besides
//! the default trunk of `--sip-allow` and `--sip-auth-user/-password`,
//! operators list trunks in a TOML file (`--sip-trunks FILE`):
//!
//! ```toml
//! [[trunk]]
//! name = "carrier"
//! allow = ["203.0.113.0/24", "198.51.100.7"]
//! user = "convene"
//! password_file = "/etc/convene/carrier.password"   # or password = "..."
//!
//! [[trunk]]
//! name = "pbx"
//! allow = ["10.1.0.5"]              # no credentials: the address is enough
//! ```
//!
//! A request is served when its source is in some trunk's `allow`; an
//! INVITE from a source that only trunks with credentials cover must
//! authenticate as one of them (its user and password).

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context as _, bail};
use ipnet::IpNet;
use serde::Deserialize;

/// The largest trunks file (and password file) read.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Trunks in one file.
const MAX_TRUNKS: usize = 256;

/// A trunk's digest credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    pub allow: Vec<IpNet>,
    pub credentials: Option<Credentials>,
}

impl Trunk {
    pub fn covers(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(&ip))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    trunk: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    allow: Vec<String>,
    user: Option<String>,
    password: Option<String>,
    password_file: Option<std::path::PathBuf>,
}

fn read_small(path: &Path, what: &str) -> anyhow::Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading the {what} {}", path.display()))?
        .len();
    if len > MAX_FILE_BYTES {
        bail!(
            "the {what} {} is {len} bytes; at most {MAX_FILE_BYTES} are read",
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("reading the {what} {}", path.display()))
}

/// The trunks of the flags: `--sip-allow`'s sources as the trunk
/// `default` (with `--sip-auth-user/-password` when set), then the file's.
pub fn configured(
    allow: &[IpNet],
    user: Option<&str>,
    password: Option<&str>,
    file: Option<&Path>,
) -> anyhow::Result<Vec<Trunk>> {
    let credentials = match (user, password) {
        (Some(u), Some(p)) => Some(Credentials {
            user: u.to_string(),
            password: p.to_string(),
        }),
        (None, None) => None,
        _ => bail!("--sip-auth-user and --sip-auth-password go together"),
    };
    let mut trunks = Vec::new();
    if allow.is_empty() {
        if credentials.is_some() {
            bail!("--sip-auth-user applies to --sip-allow's sources: name them");
        }
    } else {
        trunks.push(Trunk {
            name: "default".into(),
            allow: allow.to_vec(),
            credentials,
        });
    }
    if let Some(f) = file {
        trunks.extend(load(f)?);
    }
    Ok(trunks)
}

/// Reads a trunks file; every error names the trunk and the field.
pub fn load(path: &Path) -> anyhow::Result<Vec<Trunk>> {
    let text = read_small(path, "trunks file")?;
    parse(&text, path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("in the trunks file {}", path.display()))
}

/// Parses a trunks file's text (`dir`: where relative password files are).
pub fn parse(text: &str, dir: &Path) -> anyhow::Result<Vec<Trunk>> {
    let file: File = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    if file.trunk.is_empty() {
        bail!("no [[trunk]] is listed");
    }
    if file.trunk.len() > MAX_TRUNKS {
        bail!(
            "{} trunks are listed; at most {MAX_TRUNKS}",
            file.trunk.len()
        );
    }
    let mut out: Vec<Trunk> = Vec::with_capacity(file.trunk.len());
    for e in file.trunk {
        let name = e.name.trim().to_string();
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            bail!("trunk name `{name}`: 1 to 64 letters, digits, `-`, `_` or `.`");
        }
        if out.iter().any(|t| t.name == name) || name == "default" {
            bail!("trunk `{name}` is named twice (`default` is --sip-allow's)");
        }
        if e.allow.is_empty() {
            bail!("trunk `{name}`: `allow` lists no address");
        }
        let allow = e
            .allow
            .iter()
            .map(|a| crate::config::parse_net(a.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| anyhow::anyhow!("trunk `{name}`: allow: {why}"))?;
        let password = match (e.password, e.password_file) {
            (Some(_), Some(_)) => {
                bail!("trunk `{name}`: `password` and `password_file` exclude each other")
            }
            (Some(p), None) => Some(p),
            (None, Some(f)) => {
                let f = if f.is_relative() { dir.join(f) } else { f };
                let p = read_small(&f, "password file")
                    .map_err(|e| anyhow::anyhow!("trunk `{name}`: {e:#}"))?;
                Some(p.trim_end_matches(['\r', '\n']).to_string())
            }
            (None, None) => None,
        };
        let credentials = match (e.user, password) {
            (Some(user), Some(password)) => {
                if user.is_empty() || user.chars().any(|c| c.is_control() || c == '"') {
                    bail!(
                        "trunk `{name}`: `user` must be non-empty, without quotes or control characters"
                    );
                }
                if password.is_empty() {
                    bail!("trunk `{name}`: the password is empty");
                }
                Some(Credentials { user, password })
            }
            (None, None) => None,
            _ => bail!("trunk `{name}`: `user` and a password go together"),
        };
        out.push(Trunk {
            name,
            allow,
            credentials,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gives_named_trunks_with_or_without_credentials() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("carrier.pw"), "from-a-file\n").unwrap();
        let t = parse(
            "[[trunk]]\nname = \"carrier\"\nallow = [\"203.0.113.0/24\", \"198.51.100.7\"]\n\
             user = \"convene\"\npassword_file = \"carrier.pw\"\n\n\
             [[trunk]]\nname = \"pbx\"\nallow = [\"10.1.0.5\"]\n",
            dir.path(),
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "carrier");
        assert_eq!(
            t[0].credentials,
            Some(Credentials {
                user: "convene".into(),
                password: "from-a-file".into()
            })
        );
        assert!(t[0].covers("203.0.113.9".parse().unwrap()));
        assert!(t[0].covers("198.51.100.7".parse().unwrap()));
        assert!(!t[0].covers("198.51.100.8".parse().unwrap()));
        assert_eq!(t[1].credentials, None);
        assert!(!format!("{:?}", t[0]).contains("from-a-file"));
    }

    #[test]
    fn bad_files_say_which_trunk_and_field() {
        let dir = Path::new("/nonexistent");
        let err = |text: &str| format!("{:#}", parse(text, dir).unwrap_err());
        assert!(err("").contains("no [[trunk]]"));
        assert!(
            err("[[trunk]]\nname = \"a\"\nallow = []\n").contains("`a`: `allow` lists no address")
        );
        assert!(
            err("[[trunk]]\nname = \"a\"\nallow = [\"nope\"]\n")
                .contains("`nope` is neither an IP address")
        );
        assert!(err("[[trunk]]\nname = \"a b\"\nallow = [\"10.0.0.1\"]\n").contains("trunk name"));
        assert!(
            err("[[trunk]]\nname = \"a\"\nallow = [\"10.0.0.1\"]\nuser = \"u\"\n")
                .contains("go together")
        );
        assert!(err("[[trunk]]\nname = \"a\"\nallow = [\"10.0.0.1\"]\nuser = \"u\"\npassword = \"p\"\npassword_file = \"f\"\n").contains("exclude"));
        assert!(err("[[trunk]]\nname = \"a\"\nallow = [\"10.0.0.1\"]\nuser = \"u\"\npassword_file = \"missing\"\n").contains("password file"));
        assert!(err("[[trunk]]\nname = \"a\"\nallow = [\"10.0.0.1\"]\n[[trunk]]\nname = \"a\"\nallow = [\"10.0.0.2\"]\n").contains("named twice"));
        assert!(
            err("[[trunk]]\nname = \"a\"\nallow = [\"10.0.0.1\"]\nport = 5060\n")
                .contains("unknown field")
        );
    }
}
