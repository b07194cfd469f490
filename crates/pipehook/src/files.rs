//! The modes of what pipehook keeps on disk: folders 0700, files 0600 (the data folder, the SQLite database with
//! its WAL and shared-memory files, the master key, the workspaces root). Other local users must not read the
//! database (every organization's data), the master key, or a checkout.
//!
//! New folders and files are created with those modes. Existing ones (an installation made by an older version,
//! with 0755 / 0644) are tightened at start; a folder with the sticky bit (a shared `/tmp`-like folder someone
//! pointed pipehook at) is left alone, and a change that fails is a warning, never a failed start.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Folders pipehook creates: owner only.
pub const DIR_MODE: u32 = 0o700;
/// Files pipehook writes: owner only.
pub const FILE_MODE: u32 = 0o600;

/// `path` made absolute against the current folder, for paths given on the command line (the configuration's
/// own paths are made absolute when it is loaded); as given when the current folder cannot be read.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Creates `dir` (and missing parents) with mode 0700, or tightens an existing one to 0700 (see the module).
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    tighten(dir, DIR_MODE);
    Ok(())
}

/// Sets `path` to `mode` when it exists with other bits: not for sticky folders, and a failure only warns.
pub fn tighten(path: &Path, mode: u32) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    let current = meta.permissions().mode();
    if current & 0o7777 == mode || (meta.is_dir() && current & 0o1000 != 0) {
        return;
    }
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", current & 0o7777), error = %e,
            "cannot restrict this to its owner; other local users may be able to read it");
    }
}

/// The SQLite files of the database at `db`: the database, its WAL and its shared-memory index.
pub fn sqlite_files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [db.to_owned(), with("-wal"), with("-shm")]
}

/// Makes the SQLite database at `db` owner-only before SQLite opens it: creates it empty with mode 0600 when it
/// does not exist (SQLite treats an empty file as an empty database, and gives the WAL and shared-memory files it
/// creates the database file's mode), and tightens the three files of an existing installation.
pub fn prepare_sqlite(db: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(db) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for file in sqlite_files(db) {
        tighten(&file, FILE_MODE);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn folders_and_sqlite_files_are_owner_only() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data").join("nested");
        private_dir(&dir).unwrap();
        assert_eq!((mode(&temp.path().join("data")), mode(&dir)), (0o700, 0o700));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700, "an existing folder is tightened");

        let db = dir.join("pipehook.db");
        prepare_sqlite(&db).unwrap();
        assert_eq!((mode(&db), std::fs::metadata(&db).unwrap().len()), (0o600, 0));
        // An older installation's files, 0644.
        for f in sqlite_files(&db) {
            std::fs::write(&f, b"x").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        prepare_sqlite(&db).unwrap();
        for f in sqlite_files(&db) {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
            assert_eq!(std::fs::read(&f).unwrap(), b"x", "contents kept");
        }
        assert!(sqlite_files(&db)[1].display().to_string().ends_with("pipehook.db-wal"));
    }

    #[test]
    fn sticky_folders_are_left_alone() {
        let temp = tempfile::tempdir().unwrap();
        let shared = temp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o1777);
    }
}
