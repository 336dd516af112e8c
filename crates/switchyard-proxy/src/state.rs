//! Durable runtime decisions behind a small interface.
//!
//! Today the store is a JSON file written atomically (temporary file, fsync, rename, fsync of
//! the directory). The `StateStore` trait is what a fleet mode would implement over etcd.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchyard_core::ServiceDecision;

/// The version of the state file format.
pub const STATE_VERSION: u32 = 1;

/// What is persisted: each service's decision and the config value it was made against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    /// Format version.
    pub version: u32,
    /// The snapshot generation when written.
    pub generation: u64,
    /// Decisions by service name.
    pub services: BTreeMap<String, PersistedService>,
}

/// One service's persisted decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedService {
    /// The decision.
    #[serde(flatten)]
    pub decision: ServiceDecision,
    /// The `active` value of the config when the decision was made: if the config's value
    /// has changed since, the config wins (an operator edited the file on purpose).
    pub config_active: String,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid state document.
    #[error("state file {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Where runtime decisions are kept.
pub trait StateStore: Send + Sync + 'static {
    /// Reads the stored state; `Ok(None)` when nothing was stored yet.
    fn load(&self) -> Result<Option<PersistedState>, StateError>;
    /// Stores `state`, durably, before returning.
    fn save(&self, state: &PersistedState) -> Result<(), StateError>;
    /// A short description for logs.
    fn describe(&self) -> String;
}

/// A state store in one JSON file.
#[derive(Debug, Clone)]
pub struct FileStateStore {
    path: PathBuf,
}

impl FileStateStore {
    /// A store at `path` (the file need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStateStore { path: path.into() }
    }

    fn io(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl FileStateStore {
    /// Removes temp files a killed process left beside the state file
    /// (`.NAME.tmp.PID` whose process is gone). Returns how many were removed.
    fn clean_stale_temp_files(&self) -> usize {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let Some(name) = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            return 0;
        };
        let prefix = format!(".{name}.tmp.");
        let Ok(read) = fs::read_dir(dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in read.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = file
                .strip_prefix(&prefix)
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
            if !alive && fs::remove_file(entry.path()).is_ok() {
                tracing::info!(file = %entry.path().display(), "removed a temp file a stopped process left");
                removed += 1;
            }
        }
        removed
    }
}

impl StateStore for FileStateStore {
    fn load(&self) -> Result<Option<PersistedState>, StateError> {
        self.clean_stale_temp_files();
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let state: PersistedState =
            serde_json::from_slice(&text).map_err(|e| StateError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        if state.version != STATE_VERSION {
            return Err(StateError::Corrupt {
                path: self.path.clone(),
                message: format!("unsupported version {}", state.version),
            });
        }
        Ok(Some(state))
    }

    fn save(&self, state: &PersistedState) -> Result<(), StateError> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state.json".into());
        let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
        let json = serde_json::to_vec_pretty(state).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.io(e)
        })
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> PersistedState {
        PersistedState {
            version: STATE_VERSION,
            generation: 7,
            services: BTreeMap::from([(
                "app".to_string(),
                PersistedService {
                    decision: ServiceDecision {
                        active: "blue".into(),
                        previous: Some("green".into()),
                        ..ServiceDecision::default()
                    },
                    config_active: "green".into(),
                },
            )]),
        }
    }

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileStateStore::new(dir.path().join("sub/state.json"));
        assert!(store.load().expect("missing is fine").is_none());
        store.save(&state()).expect("save");
        assert_eq!(store.load().expect("load"), Some(state()));
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn temp_files_of_dead_processes_are_removed_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let dead = dir.path().join(".state.json.tmp.4000000");
        let mine = dir
            .path()
            .join(format!(".state.json.tmp.{}", std::process::id()));
        let other = dir.path().join(".other.json.tmp.4000000");
        for f in [&dead, &mine, &other] {
            std::fs::write(f, b"{").expect("write");
        }
        let store = FileStateStore::new(&path);
        assert!(store.load().expect("load").is_none());
        assert!(!dead.exists(), "a dead process's temp file is removed");
        assert!(mine.exists() && other.exists(), "others are left alone");
    }

    #[test]
    fn corrupt_files_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        fs::write(&path, b"{not json").expect("write");
        let err = FileStateStore::new(&path).load().expect_err("corrupt");
        assert!(err.to_string().contains("corrupt"), "{err}");
        fs::write(
            &path,
            br#"{"version": 99, "generation": 1, "services": {}}"#,
        )
        .expect("write");
        let err = FileStateStore::new(&path).load().expect_err("version");
        assert!(err.to_string().contains("unsupported version"), "{err}");
    }
}
