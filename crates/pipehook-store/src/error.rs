use thiserror::Error;

pub type StoreResult<T> = Result<T, StoreError>;

/// What a store call can fail with. Callers map [`StoreError::Conflict`] and [`StoreError::NotFound`] to
/// client errors; everything else is an internal error whose cause is logged, not shown.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A uniqueness rule was violated; the message names the rule (never a secret value).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A stored row does not satisfy the domain rules (for example a hand-edited name).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database has not been migrated to the version this binary needs.
    #[error("database schema is not up to date: {0}")]
    NotMigrated(String),
    /// A job's write was refused because the job's lease is no longer the writer's: it expired and another
    /// worker claimed the job (fencing). The writer must stop and change nothing more.
    #[error("the job's lease was lost to another worker")]
    LeaseLost,
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Database failures since the process started (not rule violations such as a duplicate name), for metrics.
static DATABASE_ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many database failures this process has met: what `pipehook_store_errors_total` reports.
pub fn database_errors() -> u64 {
    DATABASE_ERRORS.load(std::sync::atomic::Ordering::Relaxed)
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_owned());
            }
        }
        DATABASE_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StoreError::Database(e)
    }
}

impl StoreError {
    /// A database failure known only by its message (e.g. relayed from a task that did the write).
    pub fn failed(message: impl Into<String>) -> Self {
        DATABASE_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StoreError::Database(sqlx::Error::Protocol(message.into()))
    }

    /// True when retrying the same call later may succeed (the database was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed))
    }
}
