//! Where executions and builds work on disk, and with which permissions.
//!
//! Two rules, both about tenants sharing one worker:
//!
//! - **Paths come from ids, never from names users choose.** An execution works in
//!   `<workspaces>/<execution id>`, a build in `<workspaces>/builds/<build uuid>`, a second source action in
//!   `<execution workspace>/source-<n>` (its position in the stage): ids pipehook generated. An action named `..`
//!   (valid by AWS's name pattern) must not check out into the shared workspaces root. [`id_component`] refuses
//!   anything that is not one plain path component, as a second line behind the ids.
//! - **Folders are 0700** ([`create_private_dir`]), so no other local user can list or read a checkout, a build's
//!   saved shell state or its scripts, whatever the files' own modes.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The mode of every folder pipehook creates for work: owner only.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// The mode of every file pipehook writes for work (scripts, saved state): owner only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// `id` when it is one plain path component: not empty, not `.` or `..`, no `/`, no NUL, at most 255 bytes. Ids
/// pipehook generates (UUIDs) always are; anything else is refused rather than joined onto a path.
pub fn id_component(id: &str) -> Option<&str> {
    let plain = !id.is_empty() && id.len() <= 255 && id != "." && id != ".." && !id.contains(['/', '\0']);
    plain.then_some(id)
}

/// `root/<id>` when `id` is one plain path component ([`id_component`]).
pub fn id_path(root: &Path, id: &str) -> io::Result<PathBuf> {
    id_component(id)
        .map(|c| root.join(c))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{id:?} is not a plain path component")))
}

/// The folder a pipeline's source action number `index` (0-based, within the first stage) checks out into when
/// the stage has several: `source-<index + 1>`, whatever the action is called.
pub fn source_dir(execution_workspace: &Path, index: usize) -> PathBuf {
    execution_workspace.join(format!("source-{}", index + 1))
}

/// Whether `id` names a commit by its id: 7 to 64 hexadecimal digits (a full id, or an abbreviation as Bitbucket
/// sends for pull requests). What a trigger payload says to check out is used only when it is one.
pub fn is_commit_ref(id: &str) -> bool {
    (7..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether the commit a checkout resolved (`resolved`, a full id) is the one asked for (`wanted`, a full or
/// abbreviated id). git resolves an abbreviation, or a hex-looking name, to a branch or tag of that name
/// before an object, so a checkout by commit must be checked afterwards.
pub fn commit_matches(resolved: &str, wanted: &str) -> bool {
    is_commit_ref(wanted) && resolved.len() >= wanted.len() && resolved[..wanted.len()].eq_ignore_ascii_case(wanted)
}

/// Creates `dir` and any missing parents with mode 0700, and makes `dir` itself 0700 when it already existed
/// (a folder left by an older version, created 0755).
pub async fn create_private_dir(dir: &Path) -> io::Result<()> {
    tokio::fs::DirBuilder::new().recursive(true).mode(PRIVATE_DIR_MODE).create(dir).await?;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE)).await
}

/// Writes `contents` to `path` with mode 0600 (also when the file existed with another mode).
pub async fn write_private_file(path: &Path, contents: impl AsRef<[u8]>) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
        .await?;
    f.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE_MODE)).await?;
    f.write_all(contents.as_ref()).await?;
    f.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_components_are_ids() {
        for ok in ["6f1c0b7e-2a7b-4a2c-9d7e-1c2b3a4d5e6f", "a", "x.y", "..a"] {
            assert_eq!(id_component(ok), Some(ok));
        }
        let long = "a".repeat(256);
        for bad in ["", ".", "..", "a/b", "/", "../x", "a\0b", long.as_str()] {
            assert_eq!(id_component(bad), None, "{bad:?}");
            assert!(id_path(Path::new("/w"), bad).is_err());
        }
        assert_eq!(id_path(Path::new("/w"), "e1").unwrap(), Path::new("/w/e1"));
        assert_eq!(source_dir(Path::new("/w/e1"), 1), Path::new("/w/e1/source-2"));
    }

    #[test]
    fn commits_match_by_id_only() {
        let full = "6113728f27ae82c7b1a177c8d03f9e96e0adf246";
        assert!(commit_matches(full, full));
        assert!(commit_matches(full, "6113728F27AE"));
        assert!(!commit_matches(full, "611372"), "too short to be an id");
        assert!(!commit_matches(full, "refs/pull/1/head"));
        assert!(!commit_matches(full, "main"));
        assert!(!commit_matches(full, "7113728f27ae"));
        assert!(!commit_matches("6113728", full));
        assert!(is_commit_ref("3f8e2a1b9c7d") && !is_commit_ref("pr/1") && !is_commit_ref(&"a".repeat(65)));
    }

    #[tokio::test]
    async fn folders_are_0700_and_files_0600() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("a").join("b");
        create_private_dir(&dir).await.unwrap();
        for d in [temp.path().join("a"), dir.clone()] {
            assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
        }
        // An existing, open folder is closed.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).await.unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let file = dir.join("f");
        std::fs::write(&file, b"old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private_file(&file, b"new").await.unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"new");
    }
}
