//! Whether a pipehook installation exists where the configuration points. `serve` and `migrate` create one
//! when there is none; the database-side admin commands (`org`, `token`, `access-key`, `backup`) refuse
//! instead (exit 2), unless given `--create`, so running one from the wrong folder never quietly starts a
//! second installation with its own database and master key.

use pipehook_domain::secret::MasterKey;
use pipehook_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{open_migrated, prepare, StartError};
use crate::config::{Config, ConfigError, Database};

/// Where an installation lives, for messages.
fn place(config: &Config) -> (String, &'static str) {
    match &config.database {
        Database::Sqlite(path) if *path == config.data_dir.join("pipehook.db") => {
            (format!("{}", config.data_dir.display()), "data_dir (PIPEHOOK_DATA_DIR)")
        }
        Database::Sqlite(path) => (format!("{}", path.display()), "database_url (PIPEHOOK_DATABASE_URL)"),
        Database::Postgres(url) => {
            let schema = config.postgres_schema.as_deref().map(|s| format!(" (schema {s})")).unwrap_or_default();
            (format!("{}{schema}", redacted(url)), "database_url (PIPEHOOK_DATABASE_URL)")
        }
    }
}

/// A database URL without its password, for messages.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "<the configured database URL>".to_owned(),
    }
}

/// True when the configured database holds an installation: the SQLite file exists, or the PostgreSQL
/// database (schema) has pipehook's migration history. Looks only; creates nothing. PostgreSQL is retried
/// like a start is, for `postgres.connect_timeout_seconds`.
pub async fn exists(config: &Config) -> Result<bool, StartError> {
    match &config.database {
        Database::Sqlite(path) => Ok(path.is_file()),
        Database::Postgres(url) => {
            let started = Instant::now();
            let mut delay = Duration::from_millis(250);
            loop {
                match pipehook_store::copy::postgres_installed(url, config.postgres_schema.as_deref()).await {
                    Ok(found) => return Ok(found),
                    Err(e) if started.elapsed() + delay < config.postgres_connect_timeout => {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "PostgreSQL is not reachable yet");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        return Err(StartError::Runtime(format!(
                            "PostgreSQL unreachable after {} s: {e}",
                            config.postgres_connect_timeout.as_secs()
                        )))
                    }
                }
            }
        }
    }
}

/// Ok when an installation exists; otherwise the exit-2 error that says where pipehook looked and what to do.
pub async fn require(config: &Config) -> Result<(), StartError> {
    if exists(config).await? {
        return Ok(());
    }
    let (at, setting) = place(config);
    Err(StartError::Config(ConfigError::new(
        setting,
        format!(
            "no pipehook installation at {at}; run `pipehook serve` or `pipehook migrate` there first, or pass \
             --create to create one"
        ),
    )))
}

/// The master key of an existing installation: configured (`PIPEHOOK_MASTER_KEY`), or read from
/// `<data_dir>/master.key`. Never generated: a new key could not read the secrets already stored.
pub fn existing_master_key(config: &Config) -> Result<MasterKey, StartError> {
    if let Some(k) = &config.master_key {
        return Ok(k.clone());
    }
    let path = config.data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::from_base64(&text)
            .map_err(|e| ConfigError::new(format!("master key file {}", path.display()), e.0).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::new(
            "master_key (PIPEHOOK_MASTER_KEY)",
            format!(
                "not set, and {} does not exist: give this installation's key (its stored secrets were encrypted \
                 with it; a new key could not read them)",
                path.display()
            ),
        )
        .into()),
        Err(e) => Err(ConfigError::new(format!("master key file {}", path.display()), e.to_string()).into()),
    }
}

/// Opens the installation for a database-side admin command, migrated as every command leaves it. Where
/// none exists it is refused (see [`require`]), unless `create`, which creates it as `migrate` does (data
/// folder, master key, database). The master key is loaded only when `needs_key`, and never generated for
/// an installation that exists.
pub async fn open_for_admin(
    config: &Config,
    create: bool,
    needs_key: bool,
) -> Result<(Arc<dyn Store>, Option<MasterKey>), StartError> {
    if create && !exists(config).await? {
        let (store, key) = prepare(config).await?;
        return Ok((store, Some(key)));
    }
    require(config).await?;
    let key = if needs_key { Some(existing_master_key(config)?) } else { None };
    Ok((open_migrated(config).await?, key))
}
