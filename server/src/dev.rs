//! `convene --dev`: try Convene out on one machine in one command. A fixed
//! developer key that is printed (not a secret: loopback only), a room
//! `demo` that exists, and the links to open.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use convene_api::store::Db;
use convene_api::store::rooms::RoomInput;
use convene_api::store::teams::TeamRecord;

use crate::config::ServeArgs;

/// The developer key of `--dev` (well known: loopback only).
pub const DEV_KEY: &str = "convene-dev-key-for-this-machine-only";
/// The room `--dev` makes ready.
pub const DEV_ROOM: &str = "demo";

/// Loopback only, and the dev key unless one is given (`true`: it was not).
pub fn prepare(args: &mut ServeArgs) -> anyhow::Result<bool> {
    let ip = args.http_addr.ip();
    if ip.is_unspecified() {
        args.http_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.http_addr.port());
    } else if !ip.is_loopback() {
        anyhow::bail!(
            "--dev uses a well-known developer key: it serves on loopback only, \
             not on --http-addr {}",
            args.http_addr
        );
    }
    if args.api_key.is_some() {
        return Ok(false);
    }
    args.api_key = Some(DEV_KEY.to_string());
    Ok(true)
}

/// The dev key never replaces the key of a data directory that has its own.
pub async fn check_key(db: &Db) -> anyhow::Result<()> {
    if let Some(team) = db.default_team().await?
        && team.developer_key != DEV_KEY
    {
        anyhow::bail!(
            "--dev would replace this data directory's developer key with its well-known one; \
             use a fresh --data-dir for trying Convene out (or give --api-key)"
        );
    }
    Ok(())
}

/// The room `demo`, with the team's defaults, unless it exists.
pub async fn demo_room(db: &Db, team: &TeamRecord) -> anyhow::Result<()> {
    if db.room(&team.id, DEV_ROOM).await?.is_some() {
        return Ok(());
    }
    let settings = convene_api::settings::complete(
        team.default_settings.clone(),
        convene_api::settings::Target::Room,
    );
    db.create_room(
        &team.id,
        &RoomInput {
            friendly_url: Some(DEV_ROOM.to_string()),
            description: Some("made by convene --dev".into()),
            settings,
            tags: Vec::new(),
            password_hash: None,
        },
    )
    .await?;
    Ok(())
}

/// What to open.
pub fn announce(local: SocketAddr, tls: bool) {
    let scheme = if tls { "https" } else { "http" };
    let port = local.port();
    println!();
    println!(
        "  --dev: open {scheme}://localhost:{port}/{DEV_ROOM} in two browser tabs to meet yourself"
    );
    println!("  developer key (REST API, loopback only): {DEV_KEY}");
    println!(
        "  e.g. curl -H 'Authorization: Bearer {DEV_KEY}' {scheme}://localhost:{port}/api/v1/rooms"
    );
    println!();
}
