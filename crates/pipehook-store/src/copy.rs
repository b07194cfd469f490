//! Whole-database copies: a consistent snapshot of a live SQLite installation (`pipehook backup`), and every
//! table of a SQLite installation into a fresh PostgreSQL database (`pipehook db copy`).
//!
//! The copy never works from a hand-kept table list: the tables come from `sqlite_master`, the columns from
//! both catalogs, the insert order from PostgreSQL's foreign keys. A table or column on one side only is an
//! error ([`CopyError::SchemaMismatch`]), never skipped. Values are converted by the PostgreSQL column's type
//! (integers, text, booleans, blobs, floats; anything else goes through its text form and a cast), ids are
//! kept, and every sequence behind a serial or identity column is moved past the highest id (and past
//! SQLite's `sqlite_sequence`, so an AUTOINCREMENT id is never reused). The whole copy is one transaction on
//! the target, which holds every table locked and is refused unless the target is empty; before committing,
//! each table's row count is compared with the source's.

use futures::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions, Connection, Postgres, Row, Sqlite, Transaction};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::postgres::{PgOptions, PgStore};
use crate::{Store, StoreError, StoreResult};

/// The table sqlx keeps its migration history in: each side's own, never copied.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Rows per insert statement, and the text/blob bytes after which a batch is sent early.
const BATCH_ROWS: usize = 500;
const BATCH_BYTES: usize = 4 << 20;

/// Why a copy did not happen. Nothing is written to the target unless the copy succeeds as a whole.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Something the operator can fix: the source is missing or at another schema version, the target
    /// already holds data, a path cannot be used.
    #[error("{0}")]
    Refused(String),
    /// The two schemas differ (a table or column on one side only, a type the copy cannot convert): the
    /// migrations of the two backends are out of step, which is a bug in pipehook, not guessed around.
    #[error("the SQLite and PostgreSQL schemas differ: {0}")]
    SchemaMismatch(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(e: sqlx::Error) -> Self {
        CopyError::Store(e.into())
    }
}

/// Rows copied into one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: String,
    pub rows: u64,
}

/// What [`sqlite_to_postgres`] copied, in the order it copied it (parents before children).
#[derive(Debug, Clone)]
pub struct CopyReport {
    pub tables: Vec<TableCopy>,
    /// The schema version (the last migration) both sides are at.
    pub schema_version: i64,
}

impl CopyReport {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// Writes a consistent copy of the SQLite database at `source` into the new file `dest` with `VACUUM INTO`,
/// on a read-only connection of its own: a snapshot of one moment, taken while the server keeps writing
/// (WAL lets writers go on beside the read). `dest` must not exist. The copy is checked with
/// `PRAGMA quick_check` and synced to disk. Returns its size in bytes.
pub async fn sqlite_snapshot(source: &Path, dest: &Path) -> Result<u64, CopyError> {
    let dest_text =
        dest.to_str().ok_or_else(|| CopyError::Refused(format!("{} is not a UTF-8 path", dest.display())))?;
    if dest.exists() {
        return Err(CopyError::Refused(format!("{} already exists", dest.display())));
    }
    let mut conn = sqlite_reader(source).await?;
    let result = sqlx::query("VACUUM INTO ?1").bind(dest_text).execute(&mut conn).await;
    let _ = conn.close().await;
    result?;

    let mut check =
        SqliteConnectOptions::new().filename(dest).read_only(true).disable_statement_logging().connect().await?;
    let verdict: String = sqlx::query_scalar("PRAGMA quick_check").fetch_one(&mut check).await?;
    let _ = check.close().await;
    if verdict != "ok" {
        return Err(CopyError::Store(StoreError::Corrupt(format!(
            "the snapshot {} failed its integrity check: {verdict}",
            dest.display()
        ))));
    }
    let file = std::fs::File::open(dest)
        .and_then(|f| f.sync_all().map(|()| f))
        .map_err(|e| CopyError::Refused(format!("cannot sync {}: {e}", dest.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(size)
}

/// True when a pipehook installation (its migration history) exists in the PostgreSQL database at `url`, in
/// `schema` or else the connection's current schema. Looks only: creates neither schema nor table.
pub async fn postgres_installed(url: &str, schema: Option<&str>) -> StoreResult<bool> {
    let mut conn = PgConnectOptions::from_str(url)?.application_name("pipehook").connect().await?;
    let found: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = COALESCE($1, current_schema()) \
         AND tablename = $2)",
    )
    .bind(schema)
    .bind(MIGRATIONS_TABLE)
    .fetch_one(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(found)
}

/// Rows per table of the SQLite database at `path` (its migration history left out), by table name.
pub async fn sqlite_table_counts(path: &Path) -> StoreResult<BTreeMap<String, u64>> {
    let mut conn = sqlite_reader(path).await?;
    let mut tx = conn.begin().await?;
    let mut counts = BTreeMap::new();
    for table in sqlite_tables(&mut tx).await? {
        counts.insert(table.clone(), sqlite_count(&mut tx, &table).await?);
    }
    tx.commit().await?;
    Ok(counts)
}

/// Rows per table of the PostgreSQL installation at `url` (in `schema`, else the current schema).
pub async fn postgres_table_counts(url: &str, schema: Option<&str>) -> StoreResult<BTreeMap<String, u64>> {
    let mut conn = pg_connection(url, schema).await?;
    let mut tx = conn.begin().await?;
    let mut counts = BTreeMap::new();
    for table in pg_tables(&mut tx).await? {
        counts.insert(table.clone(), pg_count(&mut tx, &table).await?);
    }
    tx.commit().await?;
    Ok(counts)
}

/// Copies every table of the SQLite installation at `source` into the PostgreSQL database at `target_url`
/// (in `schema` when given, created if missing), which is migrated first and must hold no data. One
/// snapshot of the source is read; one transaction writes the target. See the module documentation.
pub async fn sqlite_to_postgres(
    source: &Path,
    target_url: &str,
    schema: Option<&str>,
) -> Result<CopyReport, CopyError> {
    if !source.is_file() {
        return Err(CopyError::Refused(format!("no SQLite database at {}", source.display())));
    }
    // The target gets this binary's migrations the ordinary way (advisory lock, schema created if named).
    let store =
        PgStore::connect(target_url, &PgOptions { max_connections: 2, schema: schema.map(str::to_owned) }).await?;
    let migrated = store.migrate().await;
    store.close().await;
    migrated?;

    let mut src_conn = sqlite_reader(source).await?;
    let mut dst_conn = pg_connection(target_url, schema).await?;
    // One read transaction is one snapshot of the source, however long the copy takes.
    let mut src = src_conn.begin().await?;
    let mut dst = dst_conn.begin().await?;

    let schema_version = same_versions(&mut src, &mut dst, source).await?;
    let src_tables = sqlite_tables(&mut src).await?;
    let dst_tables = pg_tables(&mut dst).await?;
    let (only_src, only_dst): (Vec<_>, Vec<_>) = (
        src_tables.iter().filter(|t| !dst_tables.contains(t)).cloned().collect(),
        dst_tables.iter().filter(|t| !src_tables.contains(t)).cloned().collect(),
    );
    if !only_src.is_empty() || !only_dst.is_empty() {
        return Err(CopyError::SchemaMismatch(format!(
            "tables only in SQLite: {only_src:?}; tables only in PostgreSQL: {only_dst:?}"
        )));
    }

    // Nobody else reads or writes the target while it is filled (a node started too early waits, or makes
    // this fail after the lock timeout instead of hanging).
    sqlx::query("SET LOCAL lock_timeout = '15s'").execute(&mut *dst).await?;
    if !dst_tables.is_empty() {
        let list = dst_tables.iter().map(|t| quote(t)).collect::<Vec<_>>().join(", ");
        sqlx::query(&format!("LOCK TABLE {list} IN ACCESS EXCLUSIVE MODE")).execute(&mut *dst).await?;
    }
    for table in &dst_tables {
        let any: bool =
            sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {})", quote(table))).fetch_one(&mut *dst).await?;
        if any {
            return Err(CopyError::Refused(format!(
                "the target database already has data (table {table} is not empty); copy only into a fresh database \
                 or schema, before any pipehook node has started on it"
            )));
        }
    }

    let order = insert_order(&mut dst, &src_tables).await?;
    let mut tables = Vec::with_capacity(order.len());
    for table in &order {
        let rows = copy_table(&mut src, &mut dst, table).await?;
        let (want, got) = (sqlite_count(&mut src, table).await?, pg_count(&mut dst, table).await?);
        if want != got || rows != want {
            return Err(CopyError::Store(StoreError::failed(format!(
                "table {table}: {want} rows in SQLite, {rows} read, {got} in PostgreSQL; nothing was copied"
            ))));
        }
        reset_sequences(&mut src, &mut dst, table).await?;
        tables.push(TableCopy { table: table.clone(), rows });
    }
    dst.commit().await?;
    let _ = src.commit().await;
    let _ = src_conn.close().await;
    let _ = dst_conn.close().await;
    Ok(CopyReport { tables, schema_version })
}

/// A read-only connection to an existing SQLite file (never creates one).
async fn sqlite_reader(path: &Path) -> StoreResult<SqliteConnection> {
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30))
        // Whole-table reads and VACUUM INTO are slow by nature; sqlx's slow-statement warnings would be noise.
        .disable_statement_logging()
        .connect()
        .await?)
}

async fn pg_connection(url: &str, schema: Option<&str>) -> StoreResult<PgConnection> {
    let mut opts = PgConnectOptions::from_str(url)?.application_name("pipehook-copy").disable_statement_logging();
    if let Some(schema) = schema {
        if schema.is_empty() || !schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::Corrupt(format!("invalid schema name {schema:?}")));
        }
        opts = opts.options([("search_path", schema)]);
    }
    Ok(opts.connect().await?)
}

/// `"name"`, with embedded quotes doubled: identifiers come from the catalogs, but are quoted all the same.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Both sides' applied migrations; they must be the same list (the target was just migrated by this binary,
/// so a difference means the source is older or newer than this pipehook).
async fn same_versions(
    src: &mut Transaction<'_, Sqlite>,
    dst: &mut Transaction<'_, Postgres>,
    source: &Path,
) -> Result<i64, CopyError> {
    let src_versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut **src)
            .await
            .map_err(|e| {
                CopyError::Refused(format!(
                    "{} is not a pipehook database (no migration history: {e})",
                    source.display()
                ))
            })?;
    let dst_versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut **dst)
            .await?;
    if src_versions != dst_versions {
        let (s, d) = (src_versions.last().copied().unwrap_or(0), dst_versions.last().copied().unwrap_or(0));
        let hint = if s < d {
            format!(
                "run `pipehook migrate` on the SQLite installation first (it is at version {s}, this pipehook at {d})"
            )
        } else {
            format!(
                "it was written by a newer pipehook (version {s}; this one knows up to {d}): copy with that version"
            )
        };
        return Err(CopyError::Refused(format!(
            "the SQLite database is not at this pipehook's schema version: {hint}"
        )));
    }
    Ok(dst_versions.last().copied().unwrap_or(0))
}

async fn sqlite_tables(src: &mut SqliteConnection) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         AND name <> ?1 ORDER BY rowid",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut *src)
    .await?)
}

async fn pg_tables(dst: &mut PgConnection) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace \
         AND c.relkind IN ('r', 'p') AND c.relname <> $1 ORDER BY c.oid",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut *dst)
    .await?)
}

async fn sqlite_count(src: &mut SqliteConnection, table: &str) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote(table))).fetch_one(&mut *src).await?;
    Ok(n.max(0) as u64)
}

async fn pg_count(dst: &mut PgConnection, table: &str) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote(table))).fetch_one(&mut *dst).await?;
    Ok(n.max(0) as u64)
}

/// Tables ordered so that every table comes after the tables its foreign keys point to (PostgreSQL checks
/// them at once); ties keep the SQLite creation order.
async fn insert_order(dst: &mut PgConnection, tables: &[String]) -> Result<Vec<String>, CopyError> {
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, p.relname::text FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid \
         WHERE k.contype = 'f' AND c.relnamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut *dst)
    .await?;
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (child, parent) in &edges {
        if child != parent {
            parents.entry(child.as_str()).or_default().insert(parent.as_str());
        }
    }
    let mut done: Vec<String> = Vec::with_capacity(tables.len());
    let mut left: Vec<&String> = tables.iter().collect();
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|t| parents.get(t.as_str()).is_none_or(|ps| ps.iter().all(|p| done.iter().any(|d| d == p))));
        match ready {
            Some(i) => done.push(left.remove(i).clone()),
            None => {
                return Err(CopyError::SchemaMismatch(format!(
                    "the foreign keys between {left:?} form a cycle; the copy cannot order them"
                )))
            }
        }
    }
    Ok(done)
}

/// How a column's values travel: read from SQLite as this Rust type, sent as a PostgreSQL array of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Float,
    Bytes,
    /// Anything else: read as text, cast to the column's type by PostgreSQL (text, json, timestamps...).
    Text,
}

impl Kind {
    fn of(pg_type: &str) -> Kind {
        match pg_type {
            "int2" | "int4" | "int8" => Kind::Int,
            "bool" => Kind::Bool,
            "float4" | "float8" => Kind::Float,
            "bytea" => Kind::Bytes,
            _ => Kind::Text,
        }
    }

    fn array(self) -> &'static str {
        match self {
            Kind::Int => "int8[]",
            Kind::Bool => "bool[]",
            Kind::Float => "float8[]",
            Kind::Bytes => "bytea[]",
            Kind::Text => "text[]",
        }
    }
}

struct TargetColumn {
    name: String,
    /// `format_type()`: the full type, for the cast.
    full_type: String,
    kind: Kind,
    /// Generated, or may be left out (nullable, or with a default).
    optional: bool,
    generated: bool,
}

enum Values {
    Int(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Float(Vec<Option<f64>>),
    Bytes(Vec<Option<Vec<u8>>>),
    Text(Vec<Option<String>>),
}

impl Values {
    fn new(kind: Kind) -> Values {
        match kind {
            Kind::Int => Values::Int(Vec::new()),
            Kind::Bool => Values::Bool(Vec::new()),
            Kind::Float => Values::Float(Vec::new()),
            Kind::Bytes => Values::Bytes(Vec::new()),
            Kind::Text => Values::Text(Vec::new()),
        }
    }

    /// Appends column `i` of `row`; returns the bytes it added (for batching by size).
    fn push(&mut self, row: &SqliteRow, i: usize) -> Result<usize, sqlx::Error> {
        Ok(match self {
            Values::Int(v) => {
                v.push(row.try_get(i)?);
                8
            }
            Values::Bool(v) => {
                v.push(row.try_get(i)?);
                1
            }
            Values::Float(v) => {
                v.push(row.try_get(i)?);
                8
            }
            Values::Bytes(v) => {
                let b: Option<Vec<u8>> = row.try_get(i)?;
                let n = b.as_ref().map_or(0, Vec::len);
                v.push(b);
                n
            }
            Values::Text(v) => {
                let s: Option<String> = row.try_get(i)?;
                let n = s.as_ref().map_or(0, String::len);
                v.push(s);
                n
            }
        })
    }

    fn clear(&mut self) {
        match self {
            Values::Int(v) => v.clear(),
            Values::Bool(v) => v.clear(),
            Values::Float(v) => v.clear(),
            Values::Bytes(v) => v.clear(),
            Values::Text(v) => v.clear(),
        }
    }
}

/// Copies one table: the columns both sides have (a source column the target lacks is an error; a target
/// column the source lacks must be optional), in batches of arrays unnested into one `INSERT` each.
async fn copy_table(
    src: &mut Transaction<'_, Sqlite>,
    dst: &mut Transaction<'_, Postgres>,
    table: &str,
) -> Result<u64, CopyError> {
    let src_columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .bind(table)
        .fetch_all(&mut **src)
        .await?;
    let target: Vec<TargetColumn> = sqlx::query_as::<_, (String, String, String, bool, bool)>(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, \
                (NOT a.attnotnull OR a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''), \
                a.attgenerated <> '' \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid \
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = $1 AND a.attnum > 0 \
           AND NOT a.attisdropped ORDER BY a.attnum",
    )
    .bind(table)
    .fetch_all(&mut **dst)
    .await?
    .into_iter()
    .map(|(name, full_type, typname, optional, generated)| TargetColumn {
        name,
        full_type,
        kind: Kind::of(&typname),
        optional,
        generated,
    })
    .collect();

    let mut columns: Vec<&TargetColumn> = Vec::new();
    for name in &src_columns {
        match target.iter().find(|c| &c.name == name) {
            Some(c) if c.generated => {
                return Err(CopyError::SchemaMismatch(format!(
                    "{table}.{name} is a generated column in PostgreSQL but stored in SQLite"
                )))
            }
            Some(c) => columns.push(c),
            None => return Err(CopyError::SchemaMismatch(format!("column {table}.{name} is missing in PostgreSQL"))),
        }
    }
    if let Some(c) = target.iter().find(|c| !c.optional && !src_columns.contains(&c.name)) {
        return Err(CopyError::SchemaMismatch(format!(
            "column {table}.{} (NOT NULL, no default) is missing in SQLite",
            c.name
        )));
    }
    if columns.is_empty() {
        return Ok(0);
    }

    let select = format!(
        "SELECT {} FROM {}",
        columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", "),
        quote(table)
    );
    let insert = format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM UNNEST({}) AS u({})",
        quote(table),
        columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", "),
        columns.iter().enumerate().map(|(i, c)| format!("u.c{i}::{}", c.full_type)).collect::<Vec<_>>().join(", "),
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}", i + 1, c.kind.array()))
            .collect::<Vec<_>>()
            .join(", "),
        (0..columns.len()).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", "),
    );

    let mut batch: Vec<Values> = columns.iter().map(|c| Values::new(c.kind)).collect();
    let (mut rows_in_batch, mut bytes_in_batch, mut total) = (0usize, 0usize, 0u64);
    let mut stream = sqlx::query(&select).fetch(&mut **src);
    while let Some(row) = stream.try_next().await? {
        for (i, values) in batch.iter_mut().enumerate() {
            bytes_in_batch += values.push(&row, i).map_err(|e| {
                CopyError::SchemaMismatch(format!(
                    "{table}.{}: a SQLite value does not fit PostgreSQL type {}: {e}",
                    columns[i].name, columns[i].full_type
                ))
            })?;
        }
        rows_in_batch += 1;
        total += 1;
        if rows_in_batch >= BATCH_ROWS || bytes_in_batch >= BATCH_BYTES {
            insert_batch(dst, &insert, &mut batch).await.map_err(|e| rows_refused(table, e))?;
            (rows_in_batch, bytes_in_batch) = (0, 0);
        }
    }
    drop(stream);
    if rows_in_batch > 0 {
        insert_batch(dst, &insert, &mut batch).await.map_err(|e| rows_refused(table, e))?;
    }
    Ok(total)
}

/// A batch PostgreSQL would not take (a value its type refuses, such as text with a NUL character, which SQLite
/// stores and PostgreSQL cannot), named by its table.
fn rows_refused(table: &str, e: StoreError) -> CopyError {
    let hint = if e.to_string().contains("0x00") {
        "; PostgreSQL text cannot hold NUL characters: remove or fix those rows in SQLite (an inbound log entry can \
         simply be deleted), then copy again"
    } else {
        ""
    };
    CopyError::Store(StoreError::failed(format!("PostgreSQL refused rows of table {table}: {e}{hint}")))
}

async fn insert_batch(dst: &mut PgConnection, sql: &str, batch: &mut [Values]) -> StoreResult<()> {
    let mut q = sqlx::query(sql);
    for values in batch.iter() {
        q = match values {
            Values::Int(v) => q.bind(v.clone()),
            Values::Bool(v) => q.bind(v.clone()),
            Values::Float(v) => q.bind(v.clone()),
            Values::Bytes(v) => q.bind(v.clone()),
            Values::Text(v) => q.bind(v.clone()),
        };
    }
    q.execute(&mut *dst).await?;
    batch.iter_mut().for_each(Values::clear);
    Ok(())
}

/// Moves every sequence behind a serial or identity column of `table` past the highest id copied, and
/// past the highest id SQLite ever gave out there (`sqlite_sequence`, for AUTOINCREMENT), so new rows on
/// PostgreSQL never collide with copied ones or reuse a deleted row's id.
async fn reset_sequences(
    src: &mut Transaction<'_, Sqlite>,
    dst: &mut Transaction<'_, Postgres>,
    table: &str,
) -> StoreResult<()> {
    let sequences: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.attname::text, s.seq FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         CROSS JOIN LATERAL (SELECT pg_get_serial_sequence(format('%I.%I', current_schema(), c.relname), a.attname) \
                             AS seq) s \
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = $1 AND a.attnum > 0 \
           AND NOT a.attisdropped AND s.seq IS NOT NULL",
    )
    .bind(table)
    .fetch_all(&mut **dst)
    .await?;
    if sequences.is_empty() {
        return Ok(());
    }
    let has_sqlite_sequence: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence')",
    )
    .fetch_one(&mut **src)
    .await?;
    let autoincrement: Option<i64> = if has_sqlite_sequence {
        sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = ?1")
            .bind(table)
            .fetch_optional(&mut **src)
            .await?
    } else {
        None
    };
    for (column, sequence) in sequences {
        let highest: Option<i64> =
            sqlx::query_scalar(&format!("SELECT max({})::bigint FROM {}", quote(&column), quote(table)))
                .fetch_one(&mut **dst)
                .await?;
        let last = highest.into_iter().chain(autoincrement).max().filter(|v| *v >= 1);
        // setval(seq, n, true): the next value is n + 1; setval(seq, 1, false): the next value is 1.
        sqlx::query("SELECT setval($1::regclass, $2, $3)")
            .bind(&sequence)
            .bind(last.unwrap_or(1))
            .bind(last.is_some())
            .execute(&mut **dst)
            .await?;
    }
    Ok(())
}
