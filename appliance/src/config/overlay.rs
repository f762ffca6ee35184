//! Merging the configuration's layers: TOML tables over each other, and
//! `CONVENE_APPLIANCE_*` variables onto the keys they name, typed like the
//! defaults.

/// Finds the dotted key whose env name is `rest` (e.g. `VIDEO_SOURCE` -> `video.source`).
pub(super) fn env_key(root: &toml::Value, rest: &str) -> Option<String> {
    let table = root.as_table()?;
    for (k, v) in table {
        match v {
            toml::Value::Table(sub) => {
                for sk in sub.keys() {
                    if format!("{k}_{sk}").to_uppercase() == rest {
                        return Some(format!("{k}.{sk}"));
                    }
                }
            }
            _ => {
                if k.to_uppercase() == rest {
                    return Some(k.clone());
                }
            }
        }
    }
    None
}

/// Sets a dotted key from an env string, keeping the default's type.
pub(super) fn set_key(root: &mut toml::Value, key: &str, raw: &str) -> Result<(), String> {
    let mut cur = root;
    let parts: Vec<&str> = key.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .get_mut(*p)
            .ok_or_else(|| format!("unknown section {p}"))?;
    }
    let last = parts[parts.len() - 1];
    let table = cur.as_table_mut().ok_or("not a table")?;
    let new = match table.get(last) {
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("expected an integer, got `{raw}`"))?,
        ),
        Some(toml::Value::Boolean(_)) => match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => toml::Value::Boolean(true),
            "0" | "false" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(format!("expected true or false, got `{raw}`")),
        },
        _ => toml::Value::String(raw.to_string()),
    };
    table.insert(last.to_string(), new);
    Ok(())
}

pub(super) fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}
