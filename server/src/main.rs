//! `convene`: the command line entry point.

use clap::Parser;
use convene_server::config::{
    Cli, Command, Common, ConfigAction, FleetAction, FleetRoleArg, FleetUserAction, KeyAction,
    LogFormat, TeamAction, TokenArgs,
};
use convene_server::config_file;
use serde_json::{Map, Value};

fn init_logging(format: LogFormat) {
    let mut spec = std::env::var("CONVENE_LOG").unwrap_or_else(|_| "info".into());
    // The TURN crates log every 401 challenge (the first request of every
    // TURN client) as an error and every allocation at info: quiet unless
    // CONVENE_LOG names them.
    if !spec.contains("stun_proto") && !spec.contains("turn_server_proto") {
        spec.push_str(",stun_proto=off,turn_server_proto=warn");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The admin console's "recent errors" keeps the last WARN/ERROR events.
    let ring = convene_server::admin::errors::layer();
    match format {
        LogFormat::Json => builder.json().finish().with(ring).init(),
        LogFormat::Pretty => builder.finish().with(ring).init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The configuration file's settings become flags (flag > environment >
    // file > default); a bad file stops the start with the key's name.
    let (args, from_file) = match config_file::apply(std::env::args_os().collect()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let cli = Cli::parse_from(&args);
    init_logging(cli.common.log_format);
    match cli.command {
        None => convene_server::run_serve(cli.common, cli.serve).await,
        Some(Command::Serve(args)) => convene_server::run_serve(cli.common, *args).await,
        Some(Command::Key { team, action }) => key(&cli.common, team.as_deref(), action).await,
        Some(Command::Team { action }) => team(&cli.common, action).await,
        Some(Command::Token(args)) => token(&cli.common, args).await,
        Some(Command::Room { action, remote }) => {
            convene_server::remote::room(&cli.common, remote, action).await
        }
        Some(Command::Live(remote)) => convene_server::remote::live(&cli.common, remote).await,
        Some(Command::Backup { to }) => backup(&cli.common, &to).await,
        Some(Command::Restore { from }) => restore(&cli.common, &from).await,
        Some(Command::CopyStore { to }) => copy_store(&cli.common, &to).await,
        Some(Command::Drain { wait, timeout_secs }) => convene_server::drain(
            &cli.common.data_dir,
            wait.then(|| std::time::Duration::from_secs(timeout_secs)),
        ),
        Some(Command::Fleet { action }) => fleet(&cli.common, action).await,
        Some(Command::Config {
            action: ConfigAction::Show,
        }) => {
            print!("{}", config_file::show(&args, &from_file));
            Ok(())
        }
    }
}

/// Reads a password from standard input: the first line, without its line end.
fn password_from_stdin() -> anyhow::Result<String> {
    use std::io::Read;
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|e| anyhow::anyhow!("reading the password from standard input: {e}"))?;
    let line = input.lines().next().unwrap_or("").to_string();
    anyhow::ensure!(
        !line.is_empty(),
        "no password on standard input (e.g. `printf '%s\\n' \"$PASSWORD\" | convene fleet user create ...`)"
    );
    Ok(line)
}

async fn fleet(common: &Common, action: FleetAction) -> anyhow::Result<()> {
    use convene_api::fleet::{self, FleetError, domain::FleetRole};
    let describe = |e: FleetError| match e {
        FleetError::Validation(invalid) => anyhow::anyhow!("{invalid}"),
        other => anyhow::anyhow!("{other}"),
    };
    match action {
        FleetAction::User {
            action:
                FleetUserAction::Create {
                    email,
                    role,
                    password_stdin: _,
                },
        } => {
            let password = password_from_stdin()?;
            let db = convene_server::open_store(common).await?;
            let role = match role {
                FleetRoleArg::Admin => FleetRole::Admin,
                FleetRoleArg::Viewer => FleetRole::Viewer,
            };
            let user = fleet::create_user(&db, &email, &password, role)
                .await
                .map_err(describe);
            db.close().await;
            let user = user?;
            println!("fleet user id: {}", user.id);
            println!("email:         {}", user.email);
            println!("role:          {}", user.role.as_str());
        }
        FleetAction::User {
            action: FleetUserAction::List,
        } => {
            let db = convene_server::open_store(common).await?;
            let users = db.fleet_users().await;
            db.close().await;
            for u in users? {
                println!(
                    "{}  {}  {}  {}",
                    u.id,
                    u.role.as_str(),
                    u.created_at,
                    u.email
                );
            }
        }
        FleetAction::EnrollToken { expires_in, group } => {
            use convene_api::fleet::domain::{MAX_ENROLL_TTL, MIN_ENROLL_TTL, is_slug};
            anyhow::ensure!(
                (MIN_ENROLL_TTL..=MAX_ENROLL_TTL).contains(&expires_in),
                "--expires-in must be {MIN_ENROLL_TTL} to {MAX_ENROLL_TTL} seconds"
            );
            if let Some(g) = &group {
                anyhow::ensure!(is_slug(g), "--group must be a group id (e.g. building-a)");
            }
            let db = convene_server::open_store(common).await?;
            let issued = fleet::issue_enrollment_token(&db, expires_in, group.as_deref(), None)
                .await
                .map_err(describe);
            db.close().await;
            let (record, token) = issued?;
            println!("enrollment token: {token}");
            println!("expires at:       {}", record.expires_at);
            if let Some(g) = record.group_id {
                println!("group:            {g}");
            }
        }
    }
    Ok(())
}

async fn backup(common: &Common, to: &std::path::Path) -> anyhow::Result<()> {
    convene_server::refuse_on_postgres(common, "backup")?;
    let db_file = common.data_dir.join("convene.db");
    anyhow::ensure!(
        db_file.exists(),
        "no database at {} (--data-dir)",
        db_file.display()
    );
    let db = convene_server::open_store(common).await?;
    let started = std::time::Instant::now();
    let result = db.backup_into(to).await;
    db.close().await;
    result?;
    let size = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({} KiB, integrity ok, {} ms)",
        db_file.display(),
        to.display(),
        size / 1024,
        started.elapsed().as_millis()
    );
    Ok(())
}

async fn restore(common: &Common, from: &std::path::Path) -> anyhow::Result<()> {
    convene_server::refuse_on_postgres(common, "restore")?;
    std::fs::create_dir_all(&common.data_dir)?;
    // Held until the end: no server starts on the directory meanwhile.
    let _lock = convene_server::lock_data_dir(&common.data_dir)?;
    let done = convene_api::store::restore::restore(&common.data_dir, from).await?;
    println!(
        "restored {} into {} (schema {})",
        from.display(),
        common.data_dir.join("convene.db").display(),
        done.version
    );
    for f in &done.set_aside {
        println!("the previous file is kept as {}", f.display());
    }
    println!("start the server to use it (newer migrations, if any, run then)");
    Ok(())
}

/// `convene copy-store --to URL`: the embedded database, copied into an
/// empty PostgreSQL database.
async fn copy_store(common: &Common, to: &str) -> anyhow::Result<()> {
    use convene_api::store::{Db, copy, postgres};
    let file = common.data_dir.join("convene.db");
    anyhow::ensure!(
        file.is_file(),
        "no embedded database at {} (--data-dir names the directory holding convene.db)",
        file.display()
    );
    let postgres::Backend::Postgres(options) = postgres::Backend::from_url(Some(to))? else {
        anyhow::bail!("--to must be a postgres:// URL");
    };
    // Held until the end: no server writes to the source meanwhile.
    let _lock = convene_server::lock_data_dir(&common.data_dir)?;
    let target = Db::postgres(postgres::open(&options).await?);
    let source = Db::open(&common.data_dir).await?;
    let report = copy::copy_sqlite_to_postgres(&source, &target).await;
    source.close().await;
    target.close().await;
    let report = report?;
    for (table, rows) in report.tables.iter().filter(|(_, n)| *n > 0) {
        println!("{table:<32} {rows:>9} rows");
    }
    println!(
        "copied {} rows of {} tables from {} into PostgreSQL",
        report.rows(),
        report.tables.len(),
        file.display()
    );
    println!(
        "start the server with --database-url (CONVENE_DATABASE_URL) naming it; recordings and \
         libraries stay files in --data-dir"
    );
    Ok(())
}

/// The team `--team` names (by id), or the default team.
async fn team_of(
    common: &Common,
    db: &convene_api::store::Db,
    id: Option<&str>,
) -> anyhow::Result<convene_api::store::teams::TeamRecord> {
    match id {
        Some(id) => db.team_by_id(id).await?.ok_or_else(|| {
            anyhow::anyhow!(
                "no team with id {id} in {} (`convene team create` prints a new team's id)",
                common.data_dir.display()
            )
        }),
        None => Ok(convene_server::ensure_default_team(db, None).await?.team),
    }
}

async fn key(common: &Common, team: Option<&str>, action: KeyAction) -> anyhow::Result<()> {
    let db = convene_server::open_store(common).await?;
    let team = team_of(common, &db, team).await?;
    match action {
        KeyAction::Show => {
            println!("team id:       {}", team.id);
            println!("developer key: {}", team.developer_key);
        }
        KeyAction::Rotate => {
            let key = convene_server::random_key();
            db.set_team_key(&team.id, &key).await?;
            println!("team id:       {}", team.id);
            println!("developer key: {key}");
            println!("(the previous key no longer works; tokens it signed are no longer accepted)");
        }
    }
    db.close().await;
    Ok(())
}

async fn team(common: &Common, action: TeamAction) -> anyhow::Result<()> {
    let db = convene_server::open_store(common).await?;
    match action {
        TeamAction::Create { name } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 100,
                "--name must be 1 to 100 characters"
            );
            let team = db
                .create_team(name, &convene_server::random_key(), false)
                .await?;
            println!("team id:       {}", team.id);
            println!("developer key: {}", team.developer_key);
        }
    }
    db.close().await;
    Ok(())
}

async fn token(common: &Common, args: TokenArgs) -> anyhow::Result<()> {
    let db = convene_server::open_store(common).await?;
    let team: convene_api::auth::Team = team_of(common, &db, args.team.as_deref()).await?.into();
    let room = db.room(&team.id, &args.room).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "room '{}' not found in {}",
            args.room,
            match &args.team {
                Some(t) => format!("team {t}"),
                None => "the default team".to_string(),
            }
        )
    })?;
    let mut body = Map::new();
    body.insert("u".into(), Value::from(args.name));
    if let Some(r) = args.role {
        body.insert("role".into(), Value::from(r));
    }
    if let Some(u) = args.user_id {
        body.insert("ud".into(), Value::from(u));
    }
    if let Some(m) = args.exp_minutes {
        anyhow::ensure!(m > 0, "--exp-minutes must be positive");
        body.insert("exp".into(), Value::from(m));
    }
    let claims = convene_api::tokens::claims_from_request(&team, &room, &body)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = convene_api::tokens::mint(&claims, &team.developer_key)?;
    let base = common.public_url.trim_end_matches('/');
    println!("{token}");
    println!("{base}/{}?token={token}", room.friendly_url);
    db.close().await;
    Ok(())
}
