//! Unit tests of `domain.rs`.

use super::*;
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn slugs() {
    assert_eq!(slugify("Building A"), "building-a");
    assert_eq!(slugify("  All -- Rooms!! "), "all-rooms");
    assert_eq!(slugify("Büro 3"), "b-ro-3");
    assert_eq!(slugify("!!!"), "");
    assert!(is_slug("building-a"));
    assert!(!is_slug("-a"));
    assert!(!is_slug("Building"));
    assert!(!is_slug(""));
}

#[test]
fn group_defaults_and_validation() {
    let g = new_group(&obj(json!({"name": "Building A"}))).unwrap();
    assert_eq!(g.id, "building-a");
    assert!(g.config.is_empty());
    assert!(g.description.is_none());
    let e = new_group(&obj(
        json!({"name": "", "config": {"timezone": "not a zone"}}),
    ))
    .unwrap_err();
    assert!(e.0.contains_key("name"));
    assert!(e.0.contains_key("config.timezone"));
    let ok = new_group(&obj(
        json!({"name": "X", "config": {"timezone": "America/Argentina/Buenos_Aires"}}),
    ));
    assert!(ok.is_ok());
    // Shaped like a zone but not one: refused (the zone database decides).
    let e = new_group(&obj(
        json!({"name": "X", "config": {"timezone": "Mars/Olympus_Mons"}}),
    ))
    .unwrap_err();
    assert!(e.0.contains_key("config.timezone"));
    for tz in ["UTC", "Europe/Berlin", "Etc/GMT+5"] {
        assert!(is_zone_name(tz), "{tz}");
    }
    let e = new_group(&obj(json!({"name": "X", "colour": 1}))).unwrap_err();
    assert!(e.0.contains_key("colour"));
}

#[test]
fn policy_defaults_and_validation() {
    let p = new_policy(&obj(json!({"name": "Standard"}))).unwrap();
    assert_eq!(p.priority, DEFAULT_PRIORITY);
    assert_eq!(p.target, PolicyTarget::default());
    let p = new_policy(&obj(json!({
        "name": "Standard Config", "priority": 100,
        "target": {"groups": ["all-rooms", "all-rooms"]},
        "config": {"display": {"hdmi_cec": true}}
    })))
    .unwrap();
    assert_eq!(p.target.groups, vec!["all-rooms".to_string()]);
    let e = new_policy(&obj(json!({
        "name": "x", "priority": -1, "target": {"rooms": []}, "config": []
    })))
    .unwrap_err();
    for f in ["priority", "target.rooms", "config"] {
        assert!(e.0.contains_key(f), "{f}: {e}");
    }
    let big = "x".repeat(MAX_CONFIG_BYTES);
    let e = new_policy(&obj(json!({"name": "x", "config": {"a": big}}))).unwrap_err();
    assert!(e.0.contains_key("config"));
}

#[test]
fn device_patch_rules() {
    let p = device_patch(&obj(json!({"group": null, "tags": ["a", "a", "b"]}))).unwrap();
    assert_eq!(p.group, Some(None));
    assert_eq!(p.tags.unwrap(), vec!["a", "b"]);
    let e = device_patch(&obj(json!({"name": "", "tags": "a", "group": "Bad Id"}))).unwrap_err();
    assert_eq!(e.0.len(), 3);
}

#[test]
fn list_query_rules() {
    let q = |k: &str| match k {
        "status" => Some("online".to_string()),
        "limit" => Some("10".to_string()),
        _ => None,
    };
    let (f, limit, offset) = device_list_query(q).unwrap();
    assert_eq!(f.status, Some(DeviceStatus::Online));
    assert_eq!((limit, offset), (10, 0));
    let bad = |k: &str| match k {
        "status" => Some("broken".to_string()),
        "limit" => Some("0".to_string()),
        "offset" => Some("-1".to_string()),
        _ => None,
    };
    assert_eq!(device_list_query(bad).unwrap_err().0.len(), 3);
}

#[test]
fn emails_and_passwords() {
    assert!(email("a@b.example").is_ok());
    assert!(email("a@@b").is_err());
    assert!(email("a b@c").is_err());
    assert!(email("@c").is_err());
    assert!(password("short").is_err());
    assert!(password("long enough").is_ok());
}
