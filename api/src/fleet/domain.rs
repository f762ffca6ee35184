//! The rules of the fleet resources as plain functions, no IO and no HTTP:
//! roles, device statuses, and the validation of every body and query of
//! the fleet API into the store's typed inputs. Every refusal is an
//! [`Invalid`] naming each bad field.

use serde_json::{Map, Value};

use crate::domain::fields::{check, push};
use crate::domain::{FieldErrors, Invalid};
use crate::store::fleet::{
    DeviceFilter, DevicePatch, GroupPatch, NewDevice, NewGroup, NewPolicy, PolicyPatch,
    PolicyTarget,
};

pub const MAX_NAME: usize = 100;
pub const MAX_DESCRIPTION: usize = 500;
pub const MAX_DEVICE_FIELD: usize = 100;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG: usize = 64;
pub const MAX_SLUG: usize = 64;
/// Largest `config` object of a group or policy, serialised.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024;
/// Most groups, and most devices, one policy may target.
pub const MAX_TARGETS: usize = 100;
/// Most devices one membership request may move.
pub const MAX_MEMBERS: usize = 500;
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 256;
pub const MAX_EMAIL: usize = 254;
pub const MAX_TOKEN: usize = 256;
/// Policy priority when a create names none (the seed's example value).
pub const DEFAULT_PRIORITY: i64 = 100;
pub const MAX_PRIORITY: i64 = 10_000;
/// Device list page size: default and maximum.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;
/// Enrollment token lifetime: default, minimum and maximum (seconds).
pub const DEFAULT_ENROLL_TTL: i64 = 3600;
pub const MIN_ENROLL_TTL: i64 = 60;
pub const MAX_ENROLL_TTL: i64 = 30 * 24 * 3600;

/// A fleet user's role: admins act, viewers only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetRole {
    Admin,
    Viewer,
}

impl FleetRole {
    pub fn parse(s: &str) -> Option<FleetRole> {
        match s {
            "admin" => Some(FleetRole::Admin),
            "viewer" => Some(FleetRole::Viewer),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            FleetRole::Admin => "admin",
            FleetRole::Viewer => "viewer",
        }
    }
}

/// Whether a device's appliance is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Online,
    Offline,
}

impl DeviceStatus {
    pub fn parse(s: &str) -> Option<DeviceStatus> {
        match s {
            "online" => Some(DeviceStatus::Online),
            "offline" => Some(DeviceStatus::Offline),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Online => "online",
            DeviceStatus::Offline => "offline",
        }
    }
}

/// Refuses fields of `body` not in `known`.
pub(super) fn no_unknown(body: &Map<String, Value>, known: &[&str], errors: &mut FieldErrors) {
    for k in body.keys() {
        if !known.contains(&k.as_str()) {
            let k: String = k.chars().take(64).collect();
            push(
                errors,
                &k,
                format!("unknown field (expected one of: {})", known.join(", ")),
            );
        }
    }
}

/// A required or optional string of 1..=max characters (trimmed).
fn text(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => {
            if required {
                push(errors, field, "is required");
            }
            None
        }
        Some(Value::String(s)) => {
            let t = s.trim();
            let n = t.chars().count();
            if n == 0 || n > max {
                push(errors, field, format!("must be 1 to {max} characters"));
                None
            } else if t.chars().any(char::is_control) {
                push(errors, field, "must not contain control characters");
                None
            } else {
                Some(t.to_string())
            }
        }
        Some(_) => {
            push(errors, field, "must be a string");
            None
        }
    }
}

/// True for a slug: lowercase letters, digits and `-`, starting with a
/// letter or digit, at most [`MAX_SLUG`] characters.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SLUG
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

/// The slug of a name: `Building A` -> `building-a`.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out: String = out.trim_end_matches('-').chars().take(MAX_SLUG).collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

fn slug_field(v: &Value, field: &str, errors: &mut FieldErrors) -> Option<String> {
    match v.as_str() {
        Some(s) if is_slug(s) => Some(s.to_string()),
        _ => {
            push(
                errors,
                field,
                format!(
                    "must be a group id: lowercase letters, digits and '-', at most {MAX_SLUG}"
                ),
            );
            None
        }
    }
}

/// An email address: one `@` with text on both sides, no spaces.
pub fn email(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = s.len() <= MAX_EMAIL
        && s.split('@').count() == 2
        && s.split('@').all(|p| !p.is_empty())
        && !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "must be an email address (user@domain, at most {MAX_EMAIL} characters)"
        ))
    }
}

/// A new password's length rule.
pub fn password(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        ))
    }
}

/// `POST /auth/token`: `email` and `password`.
pub fn token_request(body: &Map<String, Value>) -> Result<(String, String), Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["email", "password"], &mut errors);
    let email = match body.get("email") {
        Some(Value::String(s)) if s.len() <= MAX_EMAIL => Some(s.trim().to_string()),
        Some(Value::String(_)) => {
            push(
                &mut errors,
                "email",
                format!("at most {MAX_EMAIL} characters"),
            );
            None
        }
        None | Some(Value::Null) => {
            push(&mut errors, "email", "is required");
            None
        }
        Some(_) => {
            push(&mut errors, "email", "must be a string");
            None
        }
    };
    let password = match body.get("password") {
        Some(Value::String(s)) if s.chars().count() <= MAX_PASSWORD => Some(s.clone()),
        Some(Value::String(_)) => {
            push(
                &mut errors,
                "password",
                format!("at most {MAX_PASSWORD} characters"),
            );
            None
        }
        None | Some(Value::Null) => {
            push(&mut errors, "password", "is required");
            None
        }
        Some(_) => {
            push(&mut errors, "password", "must be a string");
            None
        }
    };
    check(errors)?;
    match (email, password) {
        (Some(e), Some(p)) => Ok((e, p)),
        _ => Err(Invalid::field("body", "email and password are required")),
    }
}

/// `POST /enrollment-tokens`: optional `expires_in` (seconds) and `group`.
pub fn enrollment_token_request(
    body: &Map<String, Value>,
) -> Result<(i64, Option<String>), Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["expires_in", "group"], &mut errors);
    let ttl = match body.get("expires_in") {
        None | Some(Value::Null) => DEFAULT_ENROLL_TTL,
        Some(v) => match v.as_i64() {
            Some(n) if (MIN_ENROLL_TTL..=MAX_ENROLL_TTL).contains(&n) => n,
            _ => {
                push(
                    &mut errors,
                    "expires_in",
                    format!(
                        "must be an integer number of seconds from {MIN_ENROLL_TTL} to {MAX_ENROLL_TTL}"
                    ),
                );
                DEFAULT_ENROLL_TTL
            }
        },
    };
    let group = match body.get("group") {
        None | Some(Value::Null) => None,
        Some(v) => slug_field(v, "group", &mut errors),
    };
    check(errors)?;
    Ok((ttl, group))
}

/// `POST /devices/enroll`: the enrollment `token` and what the device is.
pub fn enroll_request(body: &Map<String, Value>) -> Result<(String, NewDevice), Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(
        body,
        &["token", "name", "model", "serial", "version"],
        &mut errors,
    );
    let token = text(body, "token", MAX_TOKEN, true, &mut errors);
    let name = text(body, "name", MAX_NAME, true, &mut errors);
    let model = text(body, "model", MAX_DEVICE_FIELD, false, &mut errors);
    let serial = text(body, "serial", MAX_DEVICE_FIELD, false, &mut errors);
    let version = text(body, "version", MAX_DEVICE_FIELD, false, &mut errors);
    check(errors)?;
    match (token, name) {
        (Some(token), Some(name)) => Ok((
            token,
            NewDevice {
                name,
                model,
                serial,
                version,
            },
        )),
        _ => Err(Invalid::field("body", "token and name are required")),
    }
}

fn tags(v: &Value, errors: &mut FieldErrors) -> Option<Vec<String>> {
    let bad =
        format!("must be an array of at most {MAX_TAGS} strings of 1 to {MAX_TAG} characters");
    let Some(items) = v.as_array() else {
        push(errors, "tags", bad);
        return None;
    };
    if items.len() > MAX_TAGS {
        push(errors, "tags", bad);
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str().map(str::trim) {
            Some(t)
                if !t.is_empty()
                    && t.chars().count() <= MAX_TAG
                    && !t.chars().any(char::is_control) =>
            {
                if !out.iter().any(|o| o == t) {
                    out.push(t.to_string());
                }
            }
            _ => {
                push(errors, "tags", bad);
                return None;
            }
        }
    }
    Some(out)
}

/// `PATCH /devices/{id}`: `name`, `group` (a group id, or null for none), `tags`.
pub fn device_patch(body: &Map<String, Value>) -> Result<DevicePatch, Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["name", "group", "tags"], &mut errors);
    let mut patch = DevicePatch::default();
    if body.contains_key("name") {
        patch.name = text(body, "name", MAX_NAME, true, &mut errors);
    }
    match body.get("group") {
        None => {}
        Some(Value::Null) => patch.group = Some(None),
        Some(v) => patch.group = slug_field(v, "group", &mut errors).map(Some),
    }
    if let Some(v) = body.get("tags") {
        patch.tags = tags(v, &mut errors);
    }
    check(errors)?;
    Ok(patch)
}

/// A `config` object of at most [`MAX_CONFIG_BYTES`]; a group's
/// `timezone`, when present, must be an IANA zone name the zone database knows.
fn config(v: &Value, group: bool, errors: &mut FieldErrors) -> Option<Map<String, Value>> {
    let Value::Object(m) = v else {
        push(errors, "config", "must be a JSON object");
        return None;
    };
    if v.to_string().len() > MAX_CONFIG_BYTES {
        push(
            errors,
            "config",
            format!("must be at most {MAX_CONFIG_BYTES} bytes of JSON"),
        );
        return None;
    }
    if group
        && let Some(a) = m.get("alerts")
        && let Err(problem) = super::alert_rules::alert_overrides(a)
    {
        push(errors, "config.alerts", problem);
        return None;
    }
    if group && let Some(tz) = m.get("timezone") {
        let ok = tz.as_str().is_some_and(is_zone_name);
        if !ok {
            push(
                errors,
                "config.timezone",
                "must be an IANA time zone name such as America/New_York or UTC",
            );
            return None;
        }
    }
    Some(m.clone())
}

/// An IANA time zone that the zone database (`chrono-tz`, the same one the
/// appliance's calendar uses) knows: `UTC`, `Europe/Berlin`,
/// `America/Argentina/Buenos_Aires`, `Etc/GMT+5`.
pub fn is_zone_name(s: &str) -> bool {
    s.len() <= 64 && s.parse::<chrono_tz::Tz>().is_ok()
}

fn description(body: &Map<String, Value>, errors: &mut FieldErrors) -> Option<Option<String>> {
    match body.get("description")? {
        Value::Null => Some(None),
        Value::String(s) if s.chars().count() <= MAX_DESCRIPTION => {
            let t = s.trim();
            Some((!t.is_empty()).then(|| t.to_string()))
        }
        _ => {
            push(
                errors,
                "description",
                format!("must be a string of at most {MAX_DESCRIPTION} characters, or null"),
            );
            None
        }
    }
}

/// `POST /groups`: `name` (required), `id` (a slug; default: the name's
/// slug), `description`, `config` (default `{}`).
pub fn new_group(body: &Map<String, Value>) -> Result<NewGroup, Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["id", "name", "description", "config"], &mut errors);
    let name = text(body, "name", MAX_NAME, true, &mut errors);
    let id = match body.get("id") {
        None | Some(Value::Null) => name.as_deref().and_then(|n| {
            let s = slugify(n);
            if s.is_empty() {
                push(
                    &mut errors,
                    "id",
                    "is required when the name has no letters or digits to make one from",
                );
                None
            } else {
                Some(s)
            }
        }),
        Some(v) => slug_field(v, "id", &mut errors),
    };
    let description = description(body, &mut errors).flatten();
    let config = match body.get("config") {
        None | Some(Value::Null) => Some(Map::new()),
        Some(v) => config(v, true, &mut errors),
    };
    check(errors)?;
    match (id, name, config) {
        (Some(id), Some(name), Some(config)) => Ok(NewGroup {
            id,
            name,
            description,
            config,
        }),
        _ => Err(Invalid::field("name", "is required")),
    }
}

/// `PATCH /groups/{id}`: `name`, `description`, `config` (replaced whole).
pub fn group_patch(body: &Map<String, Value>) -> Result<GroupPatch, Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["name", "description", "config"], &mut errors);
    let mut patch = GroupPatch::default();
    if body.contains_key("name") {
        patch.name = text(body, "name", MAX_NAME, true, &mut errors);
    }
    patch.description = description(body, &mut errors);
    if let Some(v) = body.get("config") {
        patch.config = config(v, true, &mut errors);
    }
    check(errors)?;
    Ok(patch)
}

/// `POST /groups/{id}/devices`: `devices`, the ids to move into the group.
pub fn group_members(body: &Map<String, Value>) -> Result<Vec<String>, Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["devices"], &mut errors);
    let ids = match body.get("devices") {
        None | Some(Value::Null) => {
            push(&mut errors, "devices", "is required");
            None
        }
        Some(v) => id_list(v, "devices", MAX_MEMBERS, &mut errors),
    };
    check(errors)?;
    match ids {
        Some(ids) if !ids.is_empty() => Ok(ids),
        _ => Err(Invalid::field("devices", "must name at least one device")),
    }
}

/// An array of at most `max` distinct ids (duplicates dropped).
fn id_list(v: &Value, field: &str, max: usize, errors: &mut FieldErrors) -> Option<Vec<String>> {
    let bad = format!("must be an array of at most {max} ids");
    let Some(items) = v.as_array() else {
        push(errors, field, bad);
        return None;
    };
    if items.len() > max {
        push(errors, field, bad);
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        match item.as_str() {
            Some(s) if !s.is_empty() && s.len() <= MAX_SLUG => {
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
            _ => {
                push(errors, field, bad);
                return None;
            }
        }
    }
    Some(out)
}

pub(super) fn target(v: &Value, errors: &mut FieldErrors) -> Option<PolicyTarget> {
    let Value::Object(m) = v else {
        push(
            errors,
            "target",
            "must be an object with `groups` and/or `devices`",
        );
        return None;
    };
    for k in m.keys() {
        if k != "groups" && k != "devices" {
            let k: String = k.chars().take(64).collect();
            push(
                errors,
                &format!("target.{k}"),
                "unknown field (expected groups, devices)",
            );
        }
    }
    let groups = match m.get("groups") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(v) => id_list(v, "target.groups", MAX_TARGETS, errors),
    };
    let devices = match m.get("devices") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(v) => id_list(v, "target.devices", MAX_TARGETS, errors),
    };
    Some(PolicyTarget {
        groups: groups?,
        devices: devices?,
    })
}

fn priority(v: &Value, errors: &mut FieldErrors) -> Option<i64> {
    match v.as_i64() {
        Some(p) if (0..=MAX_PRIORITY).contains(&p) => Some(p),
        _ => {
            push(
                errors,
                "priority",
                format!("must be an integer from 0 to {MAX_PRIORITY}"),
            );
            None
        }
    }
}

/// `POST /policies`: `name` (required), `priority` (default 100),
/// `target` (`groups`, `devices`; default none), `config` (default `{}`).
pub fn new_policy(body: &Map<String, Value>) -> Result<NewPolicy, Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["name", "priority", "target", "config"], &mut errors);
    let name = text(body, "name", MAX_NAME, true, &mut errors);
    let priority = match body.get("priority") {
        None | Some(Value::Null) => Some(DEFAULT_PRIORITY),
        Some(v) => priority(v, &mut errors),
    };
    let target = match body.get("target") {
        None | Some(Value::Null) => Some(PolicyTarget::default()),
        Some(v) => target(v, &mut errors),
    };
    let config = match body.get("config") {
        None | Some(Value::Null) => Some(Map::new()),
        Some(v) => config(v, false, &mut errors),
    };
    check(errors)?;
    match (name, priority, target, config) {
        (Some(name), Some(priority), Some(target), Some(config)) => Ok(NewPolicy {
            name,
            priority,
            target,
            config,
        }),
        _ => Err(Invalid::field("name", "is required")),
    }
}

/// `PATCH /policies/{id}`: any of the create fields; `target` replaces the
/// whole target.
pub fn policy_patch(body: &Map<String, Value>) -> Result<PolicyPatch, Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["name", "priority", "target", "config"], &mut errors);
    let mut patch = PolicyPatch::default();
    if body.contains_key("name") {
        patch.name = text(body, "name", MAX_NAME, true, &mut errors);
    }
    if let Some(v) = body.get("priority") {
        patch.priority = priority(v, &mut errors);
    }
    if let Some(v) = body.get("target") {
        patch.target = if v.is_null() {
            Some(PolicyTarget::default())
        } else {
            target(v, &mut errors)
        };
    }
    if let Some(v) = body.get("config") {
        patch.config = config(v, false, &mut errors);
    }
    check(errors)?;
    Ok(patch)
}

/// `limit` (1..=500, default 50) and `offset` (default 0) of a list query.
fn page_fields(get: &impl Fn(&str) -> Option<String>, errors: &mut FieldErrors) -> (i64, i64) {
    let limit = match get("limit").as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                push(
                    errors,
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                );
                DEFAULT_LIMIT
            }
        },
    };
    let offset = match get("offset").as_deref() {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => {
                push(errors, "offset", "must be a non-negative integer");
                0
            }
        },
    };
    (limit, offset)
}

/// A list query that takes only `limit` and `offset`.
pub fn page_query(get: impl Fn(&str) -> Option<String>) -> Result<(i64, i64), Invalid> {
    let mut errors = FieldErrors::new();
    let page = page_fields(&get, &mut errors);
    check(errors)?;
    Ok(page)
}

/// The device list query: `status`, `group`, `limit` (1..=500, default 50),
/// `offset` (default 0).
pub fn device_list_query(
    get: impl Fn(&str) -> Option<String>,
) -> Result<(DeviceFilter, i64, i64), Invalid> {
    let mut errors = FieldErrors::new();
    let mut filter = DeviceFilter::default();
    match get("status").as_deref() {
        None | Some("") => {}
        Some(s) => match DeviceStatus::parse(s) {
            Some(st) => filter.status = Some(st),
            None => push(&mut errors, "status", "must be `online` or `offline`"),
        },
    }
    match get("group").as_deref() {
        None | Some("") => {}
        Some(g) if is_slug(g) => filter.group = Some(g.to_string()),
        Some(_) => push(&mut errors, "group", "must be a group id"),
    }
    let (limit, offset) = page_fields(&get, &mut errors);
    check(errors)?;
    Ok((filter, limit, offset))
}

#[cfg(test)]
mod tests;
