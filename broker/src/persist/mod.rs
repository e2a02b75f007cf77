//! Persistence: retained messages and persistent sessions survive a restart.
//!
//! They live in a sled database in `persistence_dir`, one tree each (`record` says what a
//! record holds). At startup `load` fills the retained store and the session registry
//! from it; from then on a writer thread (`writer`) saves what changed every
//! `persistence_interval_ms`, in one batch per tree followed by one flush, and once more
//! when the broker shuts down. A crash loses at most the last interval's changes; an
//! acknowledged QoS 1/2 message waiting for an absent client is saved with its session.
//! In-flight messages of a connected client are saved when it disconnects.

mod load;
pub(crate) mod record;
mod writer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::BrokerError;

pub(crate) use load::load;
pub(crate) use writer::Writer;

/// The open database.
pub(crate) struct Store {
    dir: PathBuf,
    db: sled::Db,
    retained: sled::Tree,
    sessions: sled::Tree,
}

const FORMAT_KEY: &str = "format";

/// Waits up to 5 s until no one holds the lock of the store in `dir` (sled locks its
/// `db` file); false if someone still does.
fn wait_unlocked(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir.join("db")) else {
        return true;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(std::fs::TryLockError::WouldBlock) => return false,
            _ => return true,
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`; refuses a store in another format.
    pub fn open(dir: &Path) -> Result<Store, BrokerError> {
        let err = |source| BrokerError::Persistence {
            dir: dir.to_path_buf(),
            source,
        };
        if !wait_unlocked(dir) {
            return Err(BrokerError::Config(format!(
                "persistence_dir {} is in use by another process (another hcore broker?)",
                dir.display()
            )));
        }
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(8 * 1024 * 1024)
            .open()
            .map_err(err)?;
        let format = db.get(FORMAT_KEY).map_err(err)?;
        match format.as_deref() {
            None => {
                db.insert(FORMAT_KEY, &record::FORMAT.to_be_bytes())
                    .map_err(err)?;
            }
            Some(v) if v == record::FORMAT.to_be_bytes() => {}
            Some(v) => {
                return Err(BrokerError::Config(format!(
                    "persistence_dir {} holds a store in format {v:?}, this broker writes format {}; move it away or point persistence_dir elsewhere",
                    dir.display(),
                    record::FORMAT
                )))
            }
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            retained: db.open_tree("retained").map_err(err)?,
            sessions: db.open_tree("sessions").map_err(err)?,
            db,
        })
    }

    /// Closes the database and waits until sled's IO threads have let go of its file
    /// lock, which they do a moment after the last handle is dropped: once this returns,
    /// the directory can be opened again, by this process too.
    pub fn close(self) {
        let dir = self.dir.clone();
        drop(self);
        if !wait_unlocked(&dir) {
            tracing::warn!(dir = %dir.display(), "the store is still locked 5 s after closing it");
        }
    }

    fn error(&self, source: sled::Error) -> BrokerError {
        BrokerError::Persistence {
            dir: self.dir.clone(),
            source,
        }
    }
}
