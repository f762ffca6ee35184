//! The configuration file (`--config FILE` or `CONVENE_CONFIG`): a TOML
//! file whose keys are the long flags, with the precedence flag >
//! environment > file > default.
//!
//! Keys are the flags' names without the dashes (`rtc_port = 40000`, or
//! `rtc-port`), or grouped in one level of tables whose name is the flag's
//! first word (`[media]` `workers = 2` for `--media-workers`). The file is turned into
//! the flags it stands for, each added to the command line only when the
//! flag is not given there and its environment variable is not set, so
//! clap itself applies the precedence and parses and checks every value as
//! it does a flag's. An unknown key, a value of the wrong shape or one that
//! does not parse stops the start with the key's name and what it takes.
//! `convene config show` prints every option, its value and where it came
//! from, secrets redacted.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, CommandFactory};

use crate::config::Cli;

/// The largest configuration file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Where `--config` / `CONVENE_CONFIG` points, if anywhere.
pub fn path_of(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--" {
            break;
        }
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("CONVENE_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// One option the file may set: the flag's long name, its environment
/// variable, and whether it takes a value, is a switch, or repeats.
#[derive(Debug, Clone)]
struct Opt {
    long: String,
    env: Option<OsString>,
    action: ArgAction,
}

/// Every option of the server (top level and `serve`), by key.
fn options() -> BTreeMap<String, Opt> {
    let cmd = Cli::command();
    let mut out = BTreeMap::new();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "config" || long == "help" || long == "version" {
            continue;
        }
        out.insert(
            long.replace('-', "_"),
            Opt {
                long: long.to_string(),
                env: arg.get_env().map(OsString::from),
                action: arg.get_action().clone(),
            },
        );
    }
    out
}

/// The file's settings as `(key, value)`, tables flattened one level.
fn read(path: &Path) -> Result<Vec<(String, toml::Value)>, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("reading the configuration file {}: {e}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "the configuration file {} is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the configuration file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("the configuration file {} is not TOML: {e}", path.display()))?;
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            toml::Value::Table(inner) => {
                for (k2, v2) in inner {
                    out.push((format!("{k}_{k2}").replace('-', "_"), v2));
                }
            }
            v => out.push((k.replace('-', "_"), v)),
        }
    }
    Ok(out)
}

/// A value as the flag's text.
fn text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Whether the command line already gives `--long` (the flag wins).
fn given(args: &[OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    let with_value = format!("--{long}=");
    args.iter()
        .skip(1)
        .map(|a| a.to_string_lossy())
        .take_while(|a| a != "--")
        .any(|a| a == flag || a.starts_with(&with_value))
}

/// The flags the file stands for, for the options neither the command line
/// nor the environment sets; an error names the key and what it takes.
fn flags_from(
    settings: Vec<(String, toml::Value)>,
    args: &[OsString],
    path: &Path,
) -> Result<Vec<(String, OsString)>, String> {
    let opts = options();
    let mut out = Vec::new();
    for (key, value) in settings {
        let Some(opt) = opts.get(&key) else {
            return Err(format!(
                "unknown key `{key}` in the configuration file {} (the keys are the long flags \
                 of `convene --help`, e.g. `rtc_port`)",
                path.display()
            ));
        };
        if given(args, &opt.long)
            || opt
                .env
                .as_ref()
                .is_some_and(|e| std::env::var_os(e).is_some())
        {
            continue;
        }
        let wrong = |what: &str| {
            format!(
                "`{key}` in the configuration file {} must be {what}",
                path.display()
            )
        };
        match opt.action {
            ArgAction::SetTrue | ArgAction::SetFalse => match value {
                toml::Value::Boolean(true) => {
                    out.push((key.clone(), OsString::from(format!("--{}", opt.long))))
                }
                toml::Value::Boolean(false) => {}
                _ => return Err(wrong("true or false")),
            },
            ArgAction::Append => {
                let items = match &value {
                    toml::Value::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                for item in items {
                    let t = text(&item).ok_or_else(|| wrong("a list of plain values"))?;
                    out.push((key.clone(), OsString::from(format!("--{}={t}", opt.long))));
                }
            }
            _ => {
                let t = text(&value).ok_or_else(|| wrong("a string, number or boolean"))?;
                out.push((key.clone(), OsString::from(format!("--{}={t}", opt.long))));
            }
        }
    }
    Ok(out)
}

/// The command line with the configuration file's settings added (after
/// the subcommand `serve`, where its options are read, else right after
/// the program name), and the keys that came from the file.
pub fn apply(args: Vec<OsString>) -> Result<(Vec<OsString>, Vec<String>), String> {
    let Some(path) = path_of(&args) else {
        return Ok((args, Vec::new()));
    };
    let flags = flags_from(read(&path)?, &args, &path)?;
    // Each value checked alone first, so an error names its key.
    for (key, flag) in &flags {
        if let Err(e) =
            Cli::command().try_get_matches_from([OsString::from("convene"), flag.clone()])
        {
            let reason = e.to_string();
            let reason = reason
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            return Err(format!(
                "`{key}` in the configuration file {}: {reason}",
                path.display()
            ));
        }
    }
    let at = args
        .iter()
        .position(|a| a == "serve")
        .map_or(1, |i| i + 1)
        .min(args.len());
    let keys = flags.iter().map(|(k, _)| k.clone()).collect();
    let mut out = args;
    for (i, (_, flag)) in flags.into_iter().enumerate() {
        out.insert(at + i, flag);
    }
    Ok((out, keys))
}

/// Whether an option's value is a secret (`config show` redacts it); the
/// database and Redis URLs may carry a password.
fn secret(key: &str) -> bool {
    key == "database_url"
        || key == "redis_url"
        || ["secret", "password", "key", "token"]
            .iter()
            .any(|w| key.split('_').any(|part| part == *w))
}

/// `convene config show`: every option, its value and where it came from.
pub fn show(args: &[OsString], from_file: &[String]) -> String {
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => return e.to_string(),
    };
    let mut out = String::new();
    for (key, opt) in options() {
        let Some(id) = Cli::command()
            .get_arguments()
            .find(|a| a.get_long() == Some(opt.long.as_str()))
            .map(|a| a.get_id().to_string())
        else {
            continue;
        };
        let values: Vec<String> = matches
            .get_raw(&id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let source = if from_file.contains(&key) {
            "file"
        } else {
            match matches.value_source(&id) {
                Some(clap::parser::ValueSource::CommandLine) => "flag",
                Some(clap::parser::ValueSource::EnvVariable) => "environment",
                Some(clap::parser::ValueSource::DefaultValue) => "default",
                _ => "unset",
            }
        };
        let value = if values.is_empty() {
            "-".to_string()
        } else if secret(&key) {
            "<redacted>".to_string()
        } else {
            values.join(",")
        };
        out.push_str(&format!("{key} = {value}  # {source}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn file_keys_become_flags_unless_the_command_line_gives_them() {
        let f = file("rtc_port = 41000\ntrust_proxy = true\n[rate]\nlimit_per_minute = 7\n");
        let p = f.path().to_str().unwrap();
        let (out, keys) = apply(args(&["convene", "--config", p, "--rtc-port", "42000"])).unwrap();
        assert!(out.contains(&OsString::from("--trust-proxy")), "{out:?}");
        assert!(
            out.contains(&OsString::from("--rate-limit-per-minute=7")),
            "{out:?}"
        );
        assert!(
            !out.iter().any(|a| a == "--rtc-port=41000"),
            "the flag wins: {out:?}"
        );
        assert_eq!(keys, ["rate_limit_per_minute", "trust_proxy"]);
        let cli = <Cli as clap::Parser>::try_parse_from(&out).unwrap();
        assert_eq!(cli.serve.rate_limit_per_minute, 7);
        assert!(cli.serve.trust_proxy);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let f = file("rtc_prot = 1\n");
        let p = f.path().to_str().unwrap();
        let e = apply(args(&["convene", "--config", p])).unwrap_err();
        assert!(e.contains("unknown key `rtc_prot`"), "{e}");
        let f = file("rate_limit_per_minute = \"lots\"\n");
        let p = f.path().to_str().unwrap();
        let e = apply(args(&["convene", "--config", p])).unwrap_err();
        assert!(
            e.contains("`rate_limit_per_minute`") && e.contains("lots"),
            "{e}"
        );
        let f = file("trust_proxy = \"yes\"\n");
        let p = f.path().to_str().unwrap();
        let e = apply(args(&["convene", "--config", p])).unwrap_err();
        assert!(e.contains("true or false"), "{e}");
        let f = file("this is not toml");
        let p = f.path().to_str().unwrap();
        assert!(
            apply(args(&["convene", "--config", p]))
                .unwrap_err()
                .contains("not TOML")
        );
        let e = apply(args(&["convene", "--config", "/nonexistent/convene.toml"])).unwrap_err();
        assert!(e.contains("/nonexistent/convene.toml"), "{e}");
    }

    #[test]
    fn serve_options_go_after_the_subcommand() {
        let f = file("rate_limit_per_minute = 9\n");
        let p = f.path().to_str().unwrap();
        let (out, _) = apply(args(&["convene", "--config", p, "serve"])).unwrap();
        let cli = <Cli as clap::Parser>::try_parse_from(&out).unwrap();
        match cli.command {
            Some(crate::config::Command::Serve(s)) => assert_eq!(s.rate_limit_per_minute, 9),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn show_names_sources_and_redacts_secrets() {
        let f = file("rate_limit_per_minute = 9\n");
        let p = f.path().to_str().unwrap();
        let (out, keys) = apply(args(&["convene", "--config", p, "--rtc-port", "40123"])).unwrap();
        let shown = show(&out, &keys);
        assert!(
            shown.contains("rate_limit_per_minute = 9  # file"),
            "{shown}"
        );
        assert!(shown.contains("rtc_port = 40123  # flag"), "{shown}");
        assert!(shown.contains("data_dir = ./data  # default"), "{shown}");
        for line in shown
            .lines()
            .filter(|l| secret(l.split(' ').next().unwrap_or("")))
        {
            assert!(
                line.contains("<redacted>") || line.contains("= -"),
                "{line}"
            );
        }
    }

    /// The example file in docs/configuration.md is a valid file.
    #[test]
    fn the_documented_example_is_accepted() {
        let doc = include_str!("../../docs/configuration.md");
        let start = doc.find("```toml\n").expect("an example") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("its end");
        let f = file(&doc[start..end]);
        let p = f.path().to_str().unwrap();
        let (out, keys) = apply(args(&["convene", "--config", p])).unwrap();
        assert!(keys.contains(&"media_workers".to_string()), "{keys:?}");
        <Cli as clap::Parser>::try_parse_from(&out).unwrap();
    }

    /// docs/configuration.md lists every option the code has.
    #[test]
    fn every_option_is_documented() {
        let doc = include_str!("../../docs/configuration.md");
        let missing: Vec<String> = options()
            .into_values()
            .map(|o| o.long)
            .filter(|long| !doc.contains(&format!("--{long}")))
            .collect();
        assert!(
            missing.is_empty(),
            "not in docs/configuration.md: {missing:?}"
        );
    }

    /// The Compose file and its environment example name only variables
    /// the server reads (a renamed flag would leave them silently unused).
    #[test]
    fn the_compose_files_name_real_variables() {
        let known: Vec<String> = options()
            .into_values()
            .filter_map(|o| o.env.map(|e| e.to_string_lossy().into_owned()))
            .chain(["CONVENE_CONFIG".to_string(), "CONVENE_LOG".to_string()])
            .collect();
        for (name, text) in [
            ("compose.yaml", include_str!("../../packaging/compose.yaml")),
            (
                "compose.env.example",
                include_str!("../../packaging/compose.env.example"),
            ),
        ] {
            let mut found = 0;
            for (i, _) in text.match_indices("CONVENE_") {
                let var: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                found += 1;
                assert!(
                    known.contains(&var),
                    "{name} names {var}, which the server does not read"
                );
            }
            assert!(found > 0, "{name} sets no server variable");
        }
        let compose = include_str!("../../packaging/compose.yaml");
        for needed in [
            "CONVENE_DATABASE_URL",
            "CONVENE_REDIS_URL",
            "CONVENE_NODE_ID",
            "CONVENE_NODE_LINK_ADDR",
        ] {
            assert_eq!(compose.matches(needed).count(), 2, "{needed} once per node");
        }
    }
}
