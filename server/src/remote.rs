//! `convene room create|list|delete` and `convene live`: the command line's
//! calls to a running server's REST API. They go through the API (not the
//! database) so that a room made here is validated, defaulted and announced
//! (webhooks, live participants told of a deletion) exactly as one made by
//! a backend; the developer key is read from the data directory (the
//! default team's, or `--team`'s), so they run where the server runs.

use anyhow::{Context, bail};
use serde_json::{Map, Value};

use crate::config::{Common, RemoteArgs, RoomAction};

/// The most rooms `room list` fetches (pages of 100).
const MAX_ROOMS: usize = 100_000;

struct Remote {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Remote {
    async fn open(common: &Common, args: &RemoteArgs) -> anyhow::Result<Remote> {
        let db = crate::open_store(common).await?;
        let key = match &args.team {
            Some(id) => {
                db.team_by_id(id)
                    .await?
                    .with_context(|| {
                        format!("no team with id {id} in {}", common.data_dir.display())
                    })?
                    .developer_key
            }
            None => {
                crate::ensure_default_team(&db, None)
                    .await?
                    .team
                    .developer_key
            }
        };
        db.close().await;
        let base = args
            .server
            .clone()
            .unwrap_or_else(|| common.public_url.clone())
            .trim_end_matches('/')
            .to_string();
        let url = reqwest::Url::parse(&base).with_context(|| format!("--server {base}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("--server must be an http:// or https:// URL, not {base}");
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Remote { base, key, http })
    }

    /// One API call; an error status becomes an error carrying the API's
    /// message.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("{method} {url}: is the server running there? (--server)"))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = json["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(300).collect());
            let errors = json
                .get("errors")
                .map(|e| format!(" {e}"))
                .unwrap_or_default();
            bail!("{method} {path}: {status}: {msg}{errors}");
        }
        Ok(json)
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `convene room ...`
pub async fn room(common: &Common, args: RemoteArgs, action: RoomAction) -> anyhow::Result<()> {
    let remote = Remote::open(common, &args).await?;
    match action {
        RoomAction::Create {
            friendly_url,
            description,
            privacy,
            settings,
        } => {
            let mut body = match settings {
                Some(json) => match serde_json::from_str::<Value>(&json) {
                    Ok(Value::Object(m)) => m,
                    Ok(_) => bail!("--settings must be a JSON object"),
                    Err(e) => bail!("--settings is not JSON: {e}"),
                },
                None => Map::new(),
            };
            if let Some(f) = friendly_url {
                body.insert("friendly_url".into(), Value::from(f));
            }
            if let Some(d) = description {
                body.insert("description".into(), Value::from(d));
            }
            if let Some(p) = privacy {
                body.insert("privacy".into(), Value::from(p));
            }
            let room = remote
                .call(reqwest::Method::POST, "/rooms", Some(&Value::Object(body)))
                .await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&room)?);
            } else {
                println!("room id:      {}", s(&room["id"]));
                println!("friendly_url: {}", s(&room["friendly_url"]));
                println!("privacy:      {}", s(&room["privacy"]));
                println!("url:          {}", s(&room["room_url"]));
            }
        }
        RoomAction::List => {
            let mut rooms = Vec::new();
            loop {
                let page = remote
                    .call(
                        reqwest::Method::GET,
                        &format!("/rooms?limit=100&offset={}", rooms.len()),
                        None,
                    )
                    .await?;
                let data = page["data"].as_array().cloned().unwrap_or_default();
                let total = page["total_count"].as_u64().unwrap_or(0) as usize;
                let n = data.len();
                rooms.extend(data);
                if n == 0 || rooms.len() >= total || rooms.len() >= MAX_ROOMS {
                    break;
                }
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rooms)?);
            } else {
                println!(
                    "{:<36}  {:<24}  {:<8}  created",
                    "id", "friendly_url", "privacy"
                );
                for r in &rooms {
                    println!(
                        "{:<36}  {:<24}  {:<8}  {}",
                        s(&r["id"]),
                        s(&r["friendly_url"]),
                        s(&r["privacy"]),
                        s(&r["created_at"])
                    );
                }
                println!("{} rooms", rooms.len());
            }
        }
        RoomAction::Delete { room } => {
            if room.is_empty() || room.contains('/') || room.contains('?') {
                bail!("not a room id or friendly_url: {room:?}");
            }
            remote
                .call(reqwest::Method::DELETE, &format!("/rooms/{room}"), None)
                .await?;
            println!("deleted room {room}");
        }
    }
    Ok(())
}

/// `convene live`: every live room of the team and who is in it.
pub async fn live(common: &Common, args: RemoteArgs) -> anyhow::Result<()> {
    let remote = Remote::open(common, &args).await?;
    let live = remote
        .call(reqwest::Method::GET, "/rooms/live/participants", None)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&live)?);
        return Ok(());
    }
    let rooms = live["data"].as_array().cloned().unwrap_or_default();
    if rooms.is_empty() {
        println!("no live rooms");
    }
    for r in &rooms {
        let people = r["live_participants"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        println!(
            "{}  ({}, session {}, since {}): {} live",
            s(&r["friendly_url"]),
            s(&r["id"]),
            s(&r["session_id"]),
            s(&r["start_time"]),
            people.len()
        );
        for p in &people {
            println!(
                "  {:<24}  {:<12}  {}  joined {}",
                s(&p["name"]),
                s(&p["role"]),
                s(&p["id"]),
                s(&p["join_time"])
            );
        }
    }
    Ok(())
}
