//! The appliance's configuration readers: the TOML file (schema check,
//! merge over the defaults, validation), the runtime file the agent writes
//! for `/api/config` (which may hold only the API's sections), and the
//! `CONVENE_APPLIANCE_*` environment overlay. The input is TOML text, then
//! after a NUL byte `NAME=value` lines for the environment. Every input
//! must end in a configuration or a `ConfigError`, and a configuration the
//! reader accepted must pass its own validation when read back.
#![no_main]

use convene_appliance::config::{Config, check_runtime_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (toml, env) = text.split_once('\0').unwrap_or((&text, ""));
    let _ = check_runtime_text(toml, "fuzz-runtime.toml");
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (format!("CONVENE_APPLIANCE_{k}"), v.to_string()))
        .collect();
    if let Ok(cfg) = Config::from_parts(toml, "fuzz.toml", env) {
        let _ = cfg.check_exposure();
        let _ = cfg.redacted_json();
        let written = ::toml::to_string(&cfg).expect("an accepted configuration serialises");
        if let Err(e) = Config::from_parts(&written, "written.toml", Vec::new()) {
            panic!("an accepted configuration does not read back: {e}\n{written}");
        }
    }
});
