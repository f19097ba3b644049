//! Reading a file a user names (a runbook, a `uses` target, an inputs file, a secret file)
//! with a bound on what it can cost.
//!
//! The size a file reports is no bound: `/dev/zero` reports 0 bytes and never ends, and a
//! FIFO reports 0 bytes and blocks the reader until someone writes. So only regular files are
//! read, the check is made on the open file itself (no swap between a look and the open), the
//! open never blocks, and reading stops one byte past the limit, whatever the file says.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    #[error("no such file")]
    NotFound,
    #[error("permission denied")]
    PermissionDenied,
    #[error("it is a directory, not a file")]
    Directory,
    /// A FIFO, a device or a socket: reading one may never end, or never start.
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("it is larger than {limit} bytes, the most this file may hold")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    Io(io::Error),
}

impl From<io::Error> for BoundedReadError {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::NotFound => BoundedReadError::NotFound,
            io::ErrorKind::PermissionDenied => BoundedReadError::PermissionDenied,
            _ => BoundedReadError::Io(error),
        }
    }
}

/// The bytes of the regular file at `path` (symbolic links followed), at most `limit` of them.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    // A first look, so that a device is not even opened (opening some has effects).
    check_kind(&std::fs::metadata(path)?)?;
    // O_NONBLOCK: if the path became a FIFO since, opening it returns at once instead of
    // waiting for a writer; the look at the open file then refuses it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    check_kind(&file.metadata()?)?;
    read_at_most(file, limit)
}

/// Like [`read_bounded`], for text: the bytes must be UTF-8.
pub fn read_text_bounded(path: &Path, limit: u64) -> Result<String, BoundedReadError> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|_| {
        BoundedReadError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "it is not UTF-8 text",
        ))
    })
}

fn check_kind(metadata: &std::fs::Metadata) -> Result<(), BoundedReadError> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    Err(if kind.is_dir() {
        BoundedReadError::Directory
    } else if kind.is_fifo() {
        BoundedReadError::NotRegular("a FIFO (named pipe)")
    } else if kind.is_char_device() {
        BoundedReadError::NotRegular("a character device")
    } else if kind.is_block_device() {
        BoundedReadError::NotRegular("a block device")
    } else if kind.is_socket() {
        BoundedReadError::NotRegular("a socket")
    } else {
        BoundedReadError::NotRegular("not a file")
    })
}

/// Reads up to `limit` bytes, and one more to tell a file of exactly `limit` bytes from a
/// larger one (which may still be growing).
fn read_at_most(file: File, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(BoundedReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(BoundedReadError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_bounded(&path, 5).unwrap(), b"12345");
        assert!(matches!(
            read_bounded(&path, 4),
            Err(BoundedReadError::TooLarge { limit: 4 })
        ));
        assert!(matches!(
            read_bounded(&dir.path().join("nope"), 4),
            Err(BoundedReadError::NotFound)
        ));
        assert!(matches!(
            read_bounded(dir.path(), 4),
            Err(BoundedReadError::Directory)
        ));
    }

    #[test]
    fn devices_and_fifos_are_refused() {
        let error = read_bounded(Path::new("/dev/zero"), 4).unwrap_err();
        assert_eq!(
            error.to_string(),
            "it is a character device, not a regular file"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let error = read_bounded(&fifo, 4).unwrap_err();
        assert_eq!(
            error.to_string(),
            "it is a FIFO (named pipe), not a regular file"
        );
    }
}
