//! Torn write-ahead log detection, before SQLite opens a store.
//!
//! When the first connection opens a database in WAL mode, SQLite throws the wal-index
//! (`-shm`) away and rebuilds it from the write-ahead log (`-wal`): it reads frames from the
//! start and stops, without a word, at the first one whose salt or checksum is wrong, keeping
//! only the transactions committed before it. A log that lost its tail (a truncated copy, a
//! damaged disk, a file system that did not keep what was synced) thus makes the store forget
//! transactions it had acknowledged, and a resumed run would repeat finished work.
//!
//! The wal-index is the witness: its header records how many frames had been committed. This
//! module reads both files as SQLite documents them
//! (<https://www.sqlite.org/fileformat2.html#walformat>,
//! <https://www.sqlite.org/walformat.html>) and refuses a log that holds fewer intact
//! committed frames than its index records. Frames after that count are a transaction cut
//! short by a crash: SQLite rightly drops them, and so they are no concern here.
//!
//! SQLite writes and syncs a commit's frames before it records them in the index, so with
//! `synchronous=FULL` the index never runs ahead of a log that was kept whole.

use super::StoreError;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// The WAL header: magic, format version, page size, checkpoint number, two salts, checksum.
const WAL_HEADER: usize = 32;
/// Before each page: page number, database size after commit (0 if not a commit), the two
/// salts, and the running checksum.
const FRAME_HEADER: usize = 24;
/// The low bit of the magic number tells the byte order of the checksums.
const WAL_MAGIC: u32 = 0x377f_0682;
const WAL_VERSION: u32 = 3_007_000;
/// One copy of the wal-index header; a second, identical copy follows it.
const INDEX_HEADER: usize = 48;
const INDEX_VERSION: u32 = 3_007_000;

/// What the wal-index header says, once it is known to be whole and current.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    /// `mxFrame`: the last frame of the last committed transaction.
    committed: u32,
    /// The salts of the log generation the index describes, as the bytes of the WAL header.
    salts: [u8; 8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The index does not describe this log (another generation), or the log is in a form
    /// SQLite itself will refuse loudly: nothing to compare.
    Unknown,
    /// Every frame the index records as committed is there and intact.
    Intact,
    /// SQLite would keep fewer committed frames than the index records.
    Torn { recorded: u32, intact: u32 },
}

/// Refuses to open a store whose write-ahead log lost committed transactions. Must run
/// before SQLite opens `db`, since the first connection discards the wal-index.
pub(super) fn check(db: &Path, location: &str) -> Result<(), StoreError> {
    let wal = sibling(db, "-wal");
    let shm = sibling(db, "-shm");
    check_database_file(db, &wal, location)?;
    let Some((index, Verdict::Torn { recorded, intact })) = examine_files(&wal, &shm, location)?
    else {
        return Ok(());
    };
    // Another process may have checkpointed and restarted the log while it was being read,
    // which looks like a tear for a moment: believe it only if a second look, under the same
    // index, sees it too.
    match examine_files(&wal, &shm, location)? {
        Some((again, Verdict::Torn { .. })) if again == index => Err(StoreError::Damaged {
            location: location.to_owned(),
            detail: format!(
                "the write-ahead log is torn: its index records {recorded} committed frames but \
                 only {intact} are intact; the last committed writes were lost. Refusing to \
                 open it, so that no run resumes from the wrong state. Keep a copy of {db}, \
                 {wal} and {shm} for inspection",
                db = db.display(),
                wal = wal.display(),
                shm = shm.display(),
            ),
        }),
        _ => Ok(()),
    }
}

/// Refuses an empty (or missing) database file beside a write-ahead log that holds
/// something. SQLite takes an empty database file for a new one and deletes such a log
/// when it opens it; but SQLite writes the database's first page to the file itself before
/// it ever writes a log, so the pair only arises when the file was truncated, replaced or
/// lost, and the log then holds committed runs that opening would destroy.
fn check_database_file(db: &Path, wal: &Path, location: &str) -> Result<(), StoreError> {
    let size = |path: &Path| match std::fs::metadata(path) {
        Ok(metadata) => Ok(Some(metadata.len())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(StoreError::Database {
            location: location.to_owned(),
            detail: format!("cannot look at {}: {error}", path.display()),
        }),
    };
    let Some(logged) = size(wal)?.filter(|&bytes| bytes > 0) else {
        return Ok(());
    };
    let what = match size(db)? {
        None => "the database file is missing",
        Some(0) => "the database file is empty",
        Some(_) => return Ok(()),
    };
    Err(StoreError::Damaged {
        location: location.to_owned(),
        detail: format!(
            "{what} but its write-ahead log holds {logged} bytes: the file was truncated, \
             replaced or lost, and opening the store would throw away the runs the log holds. \
             Refusing to open it. Keep a copy of {db} and {wal}, and restore the database \
             file from a backup",
            db = db.display(),
            wal = wal.display(),
        ),
    })
}

/// `runbook.db` + `-wal`: SQLite names its files by appending to the database's name.
pub(super) fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads the index, then the log, and compares them. `None` when either file is missing or
/// empty, or the index is not usable.
fn examine_files(
    wal: &Path,
    shm: &Path,
    location: &str,
) -> Result<Option<(Index, Verdict)>, StoreError> {
    let unreadable = |path: &Path, error: io::Error| StoreError::Database {
        location: location.to_owned(),
        detail: format!("cannot read {}: {error}", path.display()),
    };
    // The index first: a log restarted after this read then carries other salts, which is
    // told apart from a tear.
    let index = match File::open(shm) {
        Ok(file) => {
            let mut header = Vec::with_capacity(2 * INDEX_HEADER);
            file.take(2 * INDEX_HEADER as u64)
                .read_to_end(&mut header)
                .map_err(|error| unreadable(shm, error))?;
            header
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(unreadable(shm, error)),
    };
    let Some(index) = parse_index(&index) else {
        return Ok(None);
    };
    let file = match File::open(wal) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(unreadable(wal, error)),
    };
    let length = file
        .metadata()
        .map_err(|error| unreadable(wal, error))?
        .len();
    if length == 0 {
        // Emptied by a checkpoint that truncates, or by a clean close in persistent-WAL mode:
        // everything was copied into the database first.
        return Ok(None);
    }
    let verdict = examine(&index, length, BufReader::with_capacity(1 << 16, file))
        .map_err(|error| unreadable(wal, error))?;
    Ok(Some((index, verdict)))
}

/// The wal-index header, if both copies agree, it is initialised, and its checksum holds;
/// otherwise it is being written or is stale, and SQLite would rebuild it anyway.
fn parse_index(bytes: &[u8]) -> Option<Index> {
    if bytes.len() < 2 * INDEX_HEADER {
        return None;
    }
    let (first, second) = (
        &bytes[..INDEX_HEADER],
        &bytes[INDEX_HEADER..2 * INDEX_HEADER],
    );
    if first != second {
        return None;
    }
    // The index lives in shared memory and is written in this machine's byte order.
    let native = cfg!(target_endian = "big");
    let field = |offset: usize| word(first, offset, native);
    let initialised = first[12] == 1;
    if field(0) != INDEX_VERSION || !initialised {
        return None;
    }
    if checksum(&first[..40], native, [0, 0]) != [field(40), field(44)] {
        return None;
    }
    let mut salts = [0; 8];
    salts.copy_from_slice(&first[32..40]);
    Some(Index {
        committed: field(16),
        salts,
    })
}

/// What SQLite would find in a log `length` bytes long, against what the index records.
fn examine(index: &Index, length: u64, mut wal: impl Read) -> io::Result<Verdict> {
    let recorded = index.committed;
    if recorded == 0 {
        return Ok(Verdict::Intact);
    }
    let mut header = [0u8; WAL_HEADER];
    let available = length.min(WAL_HEADER as u64) as usize;
    if !read_whole(&mut wal, &mut header[..available])? {
        return Ok(Verdict::Unknown);
    }
    if available < 24 {
        // Too short to hold its salts: SQLite never leaves a log like this while the index
        // records frames in it (a new log's index records none), so its header was lost, and
        // with it every frame.
        return Ok(Verdict::Torn {
            recorded,
            intact: 0,
        });
    }
    if header[16..24] != index.salts {
        return Ok(Verdict::Unknown);
    }
    let header = match parse_wal_header(&header) {
        _ if length <= WAL_HEADER as u64 => None,
        Header::Valid(header) => Some(header),
        Header::Unreadable => None,
        // SQLite refuses such a log with an error of its own rather than ignoring it.
        Header::UnknownVersion => return Ok(Verdict::Unknown),
    };
    let Some(header) = header else {
        // Same generation as the index, but SQLite would ignore the whole log.
        return Ok(Verdict::Torn {
            recorded,
            intact: 0,
        });
    };
    let page = header.page_size as usize;
    let in_file = (length - WAL_HEADER as u64) / (FRAME_HEADER + page) as u64;
    let to_read = in_file.min(u64::from(recorded));
    let mut frame = vec![0u8; FRAME_HEADER + page];
    let mut sum = header.checksum;
    let (mut intact, mut committed) = (0u32, 0u32);
    for number in 1..=to_read {
        if !read_whole(&mut wal, &mut frame)? {
            // The log shrank while being read: a checkpoint truncated it.
            break;
        }
        // Exactly SQLite's test (walDecodeFrame): this generation's salts, a page number,
        // and a checksum running over the header and every frame before.
        if frame[8..16] != header.salts || word(&frame, 0, true) == 0 {
            break;
        }
        sum = checksum(&frame[..8], header.big_endian, sum);
        sum = checksum(&frame[FRAME_HEADER..], header.big_endian, sum);
        if sum != [word(&frame, 16, true), word(&frame, 20, true)] {
            break;
        }
        intact = number as u32;
        if word(&frame, 4, true) != 0 {
            committed = number as u32;
        }
    }
    Ok(if committed >= recorded {
        Verdict::Intact
    } else {
        Verdict::Torn { recorded, intact }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WalHeader {
    big_endian: bool,
    page_size: u32,
    salts: [u8; 8],
    checksum: [u32; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Valid(WalHeader),
    /// Bad magic, page size or checksum: SQLite ignores the whole log.
    Unreadable,
    UnknownVersion,
}

fn parse_wal_header(bytes: &[u8; WAL_HEADER]) -> Header {
    let magic = word(bytes, 0, true);
    if magic & !1 != WAL_MAGIC {
        return Header::Unreadable;
    }
    let big_endian = magic & 1 == 1;
    let page_size = word(bytes, 8, true);
    if !page_size.is_power_of_two() || !(512..=65536).contains(&page_size) {
        return Header::Unreadable;
    }
    let checksum = checksum(&bytes[..24], big_endian, [0, 0]);
    if checksum != [word(bytes, 24, true), word(bytes, 28, true)] {
        return Header::Unreadable;
    }
    if word(bytes, 4, true) != WAL_VERSION {
        return Header::UnknownVersion;
    }
    let mut salts = [0; 8];
    salts.copy_from_slice(&bytes[16..24]);
    Header::Valid(WalHeader {
        big_endian,
        page_size,
        salts,
        checksum,
    })
}

/// SQLite's WAL checksum (walChecksumBytes): two 32-bit sums over pairs of words, each
/// feeding the other. `data` is a multiple of 8 bytes long (headers and pages always are).
fn checksum(data: &[u8], big_endian: bool, seed: [u32; 2]) -> [u32; 2] {
    let [mut s1, mut s2] = seed;
    for pair in data.chunks_exact(8) {
        s1 = s1.wrapping_add(word(pair, 0, big_endian)).wrapping_add(s2);
        s2 = s2.wrapping_add(word(pair, 4, big_endian)).wrapping_add(s1);
    }
    [s1, s2]
}

/// The 32-bit word at `offset`; callers have checked the length.
fn word(bytes: &[u8], offset: usize, big_endian: bool) -> u32 {
    let four = [
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ];
    if big_endian {
        u32::from_be_bytes(four)
    } else {
        u32::from_le_bytes(four)
    }
}

/// Fills `buffer`; `false` if the file ended first.
fn read_whole(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buffer) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(error),
    }
}

/// For tests elsewhere in the store: whether the index of `db` was usable, what it records,
/// and whether the log holds all of it.
#[cfg(test)]
pub(super) fn inspect(db: &Path) -> Option<(u32, bool)> {
    let (index, verdict) =
        examine_files(&sibling(db, "-wal"), &sibling(db, "-shm"), "test").ok()??;
    match verdict {
        Verdict::Unknown => None,
        verdict => Some((index.committed, verdict == Verdict::Intact)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALTS: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
    const PAGE: u32 = 512;

    /// A log as SQLite writes it: `frames` are (page number, database size if a commit).
    fn log(big_endian: bool, salts: [u8; 8], frames: &[(u32, u32)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend((WAL_MAGIC | u32::from(big_endian)).to_be_bytes());
        bytes.extend(WAL_VERSION.to_be_bytes());
        bytes.extend(PAGE.to_be_bytes());
        bytes.extend(0u32.to_be_bytes());
        bytes.extend(salts);
        let mut sum = checksum(&bytes, big_endian, [0, 0]);
        bytes.extend(sum[0].to_be_bytes());
        bytes.extend(sum[1].to_be_bytes());
        for (n, &(page_number, commit)) in frames.iter().enumerate() {
            let mut head = Vec::new();
            head.extend(page_number.to_be_bytes());
            head.extend(commit.to_be_bytes());
            let page = vec![n as u8 + 1; PAGE as usize];
            sum = checksum(&head, big_endian, sum);
            sum = checksum(&page, big_endian, sum);
            head.extend(salts);
            head.extend(sum[0].to_be_bytes());
            head.extend(sum[1].to_be_bytes());
            bytes.extend(head);
            bytes.extend(page);
        }
        bytes
    }

    /// A wal-index header as SQLite writes it, both copies.
    fn index_bytes(committed: u32, salts: [u8; 8]) -> Vec<u8> {
        let mut head = Vec::new();
        head.extend(INDEX_VERSION.to_ne_bytes());
        head.extend(0u32.to_ne_bytes());
        head.extend(7u32.to_ne_bytes());
        head.extend([1u8, 0]);
        head.extend((PAGE as u16).to_ne_bytes());
        head.extend(committed.to_ne_bytes());
        head.extend(3u32.to_ne_bytes());
        head.extend([0u8; 8]);
        head.extend(salts);
        let sum = checksum(&head, cfg!(target_endian = "big"), [0, 0]);
        head.extend(sum[0].to_ne_bytes());
        head.extend(sum[1].to_ne_bytes());
        let mut bytes = head.clone();
        bytes.extend(head);
        bytes
    }

    fn verdict(index: &[u8], wal: &[u8]) -> Option<Verdict> {
        let index = parse_index(index)?;
        Some(examine(&index, wal.len() as u64, wal).unwrap())
    }

    fn frame_end(n: usize) -> usize {
        WAL_HEADER + n * (FRAME_HEADER + PAGE as usize)
    }

    /// Two transactions: frames 1-2, then 3-5.
    const TWO_COMMITS: [(u32, u32); 5] = [(1, 0), (2, 2), (1, 0), (3, 0), (2, 3)];

    #[test]
    fn a_whole_log_is_intact_in_either_byte_order() {
        for big_endian in [false, true] {
            let wal = log(big_endian, SALTS, &TWO_COMMITS);
            assert_eq!(verdict(&index_bytes(5, SALTS), &wal), Some(Verdict::Intact));
            assert_eq!(verdict(&index_bytes(2, SALTS), &wal), Some(Verdict::Intact));
        }
    }

    #[test]
    fn a_truncated_log_is_torn() {
        let wal = log(false, SALTS, &TWO_COMMITS);
        let index = index_bytes(5, SALTS);
        // Mid-way through frame 4.
        let cut = &wal[..frame_end(3) + 100];
        assert_eq!(
            verdict(&index, cut),
            Some(Verdict::Torn {
                recorded: 5,
                intact: 3
            })
        );
        // Down to the header, and below it.
        assert_eq!(
            verdict(&index, &wal[..WAL_HEADER]),
            Some(Verdict::Torn {
                recorded: 5,
                intact: 0
            })
        );
        assert_eq!(
            verdict(&index, &wal[..10]),
            Some(Verdict::Torn {
                recorded: 5,
                intact: 0
            })
        );
    }

    #[test]
    fn a_damaged_frame_before_the_last_commit_is_a_tear() {
        let mut wal = log(true, SALTS, &TWO_COMMITS);
        wal[frame_end(1) + FRAME_HEADER + 17] ^= 0x40;
        assert_eq!(
            verdict(&index_bytes(5, SALTS), &wal),
            Some(Verdict::Torn {
                recorded: 5,
                intact: 1
            })
        );
        // A damaged header checksum: SQLite would ignore every frame.
        let mut wal = log(false, SALTS, &TWO_COMMITS);
        wal[25] ^= 1;
        assert_eq!(
            verdict(&index_bytes(2, SALTS), &wal),
            Some(Verdict::Torn {
                recorded: 2,
                intact: 0
            })
        );
    }

    #[test]
    fn frames_after_the_last_commit_are_a_crash_not_a_tear() {
        // A third transaction cut short: one whole frame without commit, then half a frame.
        let mut frames = TWO_COMMITS.to_vec();
        frames.extend([(4, 0), (5, 0)]);
        let wal = log(false, SALTS, &frames);
        let cut = &wal[..frame_end(6) + 200];
        assert_eq!(verdict(&index_bytes(5, SALTS), cut), Some(Verdict::Intact));
        // Damage there does not matter either.
        let mut wal = wal.clone();
        wal[frame_end(5) + 30] ^= 1;
        assert_eq!(verdict(&index_bytes(5, SALTS), &wal), Some(Verdict::Intact));
    }

    #[test]
    fn an_index_of_another_generation_is_not_evidence() {
        let wal = log(false, SALTS, &TWO_COMMITS[..2]);
        let other = [9, 9, 9, 9, 9, 9, 9, 9];
        assert_eq!(
            verdict(&index_bytes(5, other), &wal),
            Some(Verdict::Unknown)
        );
        // Nor is a log whose frames carry other salts: SQLite stops there too.
        let mut wal = log(false, SALTS, &TWO_COMMITS);
        let old = log(false, other, &TWO_COMMITS);
        wal[frame_end(2)..].copy_from_slice(&old[frame_end(2)..]);
        assert_eq!(
            verdict(&index_bytes(5, SALTS), &wal),
            Some(Verdict::Torn {
                recorded: 5,
                intact: 2
            })
        );
        assert_eq!(verdict(&index_bytes(2, SALTS), &wal), Some(Verdict::Intact));
    }

    #[test]
    fn an_index_that_is_not_whole_is_ignored() {
        let good = index_bytes(5, SALTS);
        assert!(parse_index(&good).is_some());
        assert!(parse_index(&good[..60]).is_none());
        // The copies differ: caught mid-write.
        let mut torn = good.clone();
        torn[INDEX_HEADER + 16] ^= 1;
        assert!(parse_index(&torn).is_none());
        // Both copies changed alike, but the checksum no longer holds.
        let mut bad = good.clone();
        bad[16] ^= 1;
        bad[INDEX_HEADER + 16] ^= 1;
        assert!(parse_index(&bad).is_none());
        // Not initialised (SQLite truncates the file and starts over).
        assert!(parse_index(&[0; 2 * INDEX_HEADER]).is_none());
    }

    #[test]
    fn an_empty_index_or_a_log_of_an_unknown_version_is_left_to_sqlite() {
        let wal = log(false, SALTS, &TWO_COMMITS);
        assert_eq!(
            verdict(&index_bytes(0, SALTS), &wal[..40]),
            Some(Verdict::Intact)
        );
        let mut newer = wal.clone();
        newer[4..8].copy_from_slice(&(WAL_VERSION + 1).to_be_bytes());
        let sum = checksum(&newer[..24], false, [0, 0]);
        newer[24..28].copy_from_slice(&sum[0].to_be_bytes());
        newer[28..32].copy_from_slice(&sum[1].to_be_bytes());
        assert_eq!(
            verdict(&index_bytes(5, SALTS), &newer),
            Some(Verdict::Unknown)
        );
    }

    #[test]
    fn files_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("runbook.db");
        let location = "sqlite:runbook.db";
        // Neither file: nothing to check.
        check(&db, location).unwrap();
        std::fs::write(sibling(&db, "-shm"), index_bytes(5, SALTS)).unwrap();
        std::fs::write(sibling(&db, "-wal"), b"").unwrap();
        check(&db, location).unwrap();
        let wal = log(false, SALTS, &TWO_COMMITS);
        std::fs::write(sibling(&db, "-wal"), &wal).unwrap();
        // A log with no database file, or an empty one, beside it: the file was lost.
        let error = check(&db, location).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the database file is missing but its write-ahead log holds"),
            "{error}"
        );
        std::fs::write(&db, b"").unwrap();
        let error = check(&db, location).unwrap_err();
        assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
        assert!(
            error.to_string().contains(&format!(
                "the database file is empty but its write-ahead log holds {} bytes",
                wal.len()
            )),
            "{error}"
        );
        std::fs::write(&db, [0u8; 4096]).unwrap();
        check(&db, location).unwrap();
        std::fs::write(sibling(&db, "-wal"), &wal[..frame_end(4)]).unwrap();
        let error = check(&db, location).unwrap_err();
        assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.contains("records 5 committed frames but only 4 are intact"),
            "{message}"
        );
        assert!(message.contains("runbook.db-shm"), "{message}");
    }
}
