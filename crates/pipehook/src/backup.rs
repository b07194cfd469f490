//! `pipehook backup` (an online, consistent copy of a SQLite installation and its master key) and
//! `pipehook db copy` (a SQLite installation into a fresh PostgreSQL database). The SQL is in
//! [`pipehook_store::copy`]; this is the command side: paths, refusals, files, messages.

use pipehook_domain::secret::MasterKey;
use pipehook_store::copy::{self, CopyError};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::app::StartError;
use crate::config::{Config, ConfigError, Database};
use crate::installation::{existing_master_key, redacted, require};

const DB_FILE: &str = "pipehook.db";
const KEY_FILE: &str = "master.key";

fn usage(setting: &str, problem: impl Into<String>) -> StartError {
    StartError::Config(ConfigError::new(setting, problem))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> StartError {
    move |e| StartError::Runtime(format!("{what}: {e}"))
}

/// `pipehook backup --to DIR [--force]`.
pub async fn backup(config: &Config, to: &Path, force: bool) -> Result<(), StartError> {
    let to = crate::files::absolute(to);
    match &config.database {
        Database::Sqlite(db) => {
            require(config).await?;
            let key = existing_master_key(config)?;
            let own = [config.data_dir.clone(), db.parent().unwrap_or(Path::new("/")).to_owned()];
            prepare_folder(&to, force, &own)?;
            let started = Instant::now();
            let size = snapshot_into(db, &to).await?;
            write_key(&to, &key)?;
            sync_dir(&to);
            println!(
                "backed up {} ({size} bytes) and its master key to {} in {:.1} s",
                db.display(),
                to.display(),
                started.elapsed().as_secs_f64()
            );
            println!(
                "restore: stop pipehook, copy the folder (cp -a) to where the data should live, and start \
                 `pipehook serve --data-dir <that folder>`"
            );
            Ok(())
        }
        Database::Postgres(url) => {
            // The key is what only pipehook has; the database is PostgreSQL's to dump.
            let key = existing_master_key(config)?;
            prepare_folder(&to, force, std::slice::from_ref(&config.data_dir))?;
            write_key(&to, &key)?;
            sync_dir(&to);
            let schema = config.postgres_schema.as_deref().map(|s| format!(" --schema={s}")).unwrap_or_default();
            eprintln!(
                "pipehook: this installation uses PostgreSQL, whose database pipehook does not copy: back it up with \
                 pg_dump, e.g. `pg_dump --format=custom{schema} --file pipehook.dump '{}'` (restore with pg_restore)",
                redacted(url)
            );
            println!("copied the master key to {} (keep it with the database dump)", to.join(KEY_FILE).display());
            Ok(())
        }
    }
}

/// Makes `to` ready for a backup: created 0700 when missing; refused when it is the installation's own
/// folder, already holds a backup (unless `force`), or looks like a data folder in use.
fn prepare_folder(to: &Path, force: bool, own: &[PathBuf]) -> Result<(), StartError> {
    const SETTING: &str = "--to";
    if to.exists() {
        if !to.is_dir() {
            return Err(usage(SETTING, format!("{} exists and is not a folder", to.display())));
        }
        let canonical = std::fs::canonicalize(to).unwrap_or_else(|_| to.to_owned());
        if own.iter().any(|d| std::fs::canonicalize(d).is_ok_and(|d| d == canonical)) {
            return Err(usage(
                SETTING,
                format!("{} is the installation's own folder; back up elsewhere", to.display()),
            ));
        }
        for live in ["pipehook.db-wal", "pipehook.db-shm"] {
            if to.join(live).exists() {
                return Err(usage(
                    SETTING,
                    format!(
                        "{} holds {live}: it looks like a data folder in use (a server may be running on it); \
                         stop it or choose another folder",
                        to.display()
                    ),
                ));
            }
        }
        let existing: Vec<&str> = [DB_FILE, KEY_FILE].into_iter().filter(|f| to.join(f).exists()).collect();
        if !existing.is_empty() && !force {
            return Err(usage(
                SETTING,
                format!(
                    "{} already holds a backup ({}); pass --force to replace it",
                    to.display(),
                    existing.join(", ")
                ),
            ));
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(crate::files::DIR_MODE)
        .create(to)
        .map_err(|e| usage(SETTING, format!("cannot create {}: {e}", to.display())))
}

/// A temporary name in `dir` for a file that replaces `name` only once complete.
fn partial(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.partial-{}", std::process::id()))
}

/// Snapshots the database into `<to>/pipehook.db` (mode 0600) through a temporary file, so an earlier backup
/// is replaced only by a complete one. Returns the size.
async fn snapshot_into(db: &Path, to: &Path) -> Result<u64, StartError> {
    let tmp = partial(to, DB_FILE);
    let _ = std::fs::remove_file(&tmp);
    let result = async {
        let size = copy::sqlite_snapshot(db, &tmp).await.map_err(|e| match e {
            CopyError::Refused(m) => usage("--to", m),
            other => StartError::Runtime(format!("backing up {} failed: {other}", db.display())),
        })?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(crate::files::FILE_MODE))
            .map_err(io(format!("cannot restrict {}", tmp.display())))?;
        std::fs::rename(&tmp, to.join(DB_FILE)).map_err(io(format!("cannot move the backup into {}", to.display())))?;
        Ok(size)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes the key as `<to>/master.key`, mode 0600, in the format pipehook reads it (base64 and a newline).
fn write_key(to: &Path, key: &MasterKey) -> Result<(), StartError> {
    let tmp = partial(to, KEY_FILE);
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::files::FILE_MODE)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(key.to_base64().as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, to.join(KEY_FILE)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(StartError::Runtime(format!("cannot write the master key into {}: {e}", to.display())));
    }
    Ok(())
}

/// Makes the renames durable (best effort: not every file system lets a folder be synced).
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `pipehook db copy [--from DIR|FILE] --to postgres://... [--schema NAME]`.
pub async fn copy_database(
    config: &Config,
    from: Option<&Path>,
    to: &str,
    schema: Option<&str>,
) -> Result<(), StartError> {
    let source =
        match from {
            Some(p) => {
                let text = p.to_string_lossy();
                let p = match text.strip_prefix("sqlite:") {
                    Some(rest) => PathBuf::from(rest.trim_start_matches("//").split('?').next().unwrap_or_default()),
                    None => p.to_owned(),
                };
                let p = crate::files::absolute(&p);
                if p.is_dir() {
                    p.join(DB_FILE)
                } else {
                    p
                }
            }
            None => match &config.database {
                Database::Sqlite(path) => path.clone(),
                Database::Postgres(_) => return Err(usage(
                    "--from",
                    "the configured database is PostgreSQL already; name the SQLite installation's folder with --from",
                )),
            },
        };
    if !source.is_file() {
        return Err(usage(
            "--from",
            format!("no pipehook installation at {} (no SQLite database there)", source.display()),
        ));
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(usage("--to", "must be a postgres:// or postgresql:// URL"));
    }
    let schema = schema.or(config.postgres_schema.as_deref());
    let target = format!("{}{}", redacted(to), schema.map(|s| format!(" (schema {s})")).unwrap_or_default());
    eprintln!(
        "pipehook: copying one snapshot of {} into {target}; writes made after it starts are not copied, so stop \
         pipehook on the SQLite installation first",
        source.display()
    );
    let started = Instant::now();
    let report = copy::sqlite_to_postgres(&source, to, schema).await.map_err(|e| match e {
        CopyError::Refused(m) => usage("db copy", m),
        CopyError::SchemaMismatch(_) => StartError::Runtime(format!("{e}; nothing was copied")),
        CopyError::Store(s) => StartError::Runtime(format!("copying into {target} failed, nothing was copied: {s}")),
    })?;
    println!("{:<24} ROWS", "TABLE");
    for t in &report.tables {
        println!("{:<24} {}", t.table, t.rows);
    }
    println!(
        "copied {} rows in {} tables (schema version {}) into {target} in {:.1} s",
        report.total_rows(),
        report.tables.len(),
        report.schema_version,
        started.elapsed().as_secs_f64()
    );
    let key_file = source.parent().map(|d| d.join(KEY_FILE));
    let key_hint = match key_file.filter(|k| k.is_file()) {
        Some(k) => format!("PIPEHOOK_MASTER_KEY=$(cat {})", k.display()),
        None => "PIPEHOOK_MASTER_KEY=<this installation's master key>".to_owned(),
    };
    let schema_hint = schema.map(|s| format!("PIPEHOOK_POSTGRES_SCHEMA={s} ")).unwrap_or_default();
    println!(
        "next: start pipehook on PostgreSQL with the same master key (stored secrets are encrypted with it): \
         PIPEHOOK_DATABASE_URL='{}' {schema_hint}{key_hint} pipehook serve",
        redacted(to)
    );
    Ok(())
}
