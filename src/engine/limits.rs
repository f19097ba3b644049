//! Bounds on what a runbook's expressions may produce. A jq expression can build a value of
//! any size (`[range(3000000)]`), and every output is journaled, kept in the run's state and
//! handed to later steps: an unbounded one costs memory and disk out of all proportion.

use serde_json::Value;
use std::io::{self, Write};

/// The most an output value (a step's, a fallback's, a verify probe's or the runbook's) may
/// take as JSON. Flink job lists and Kubernetes resources fit many times over.
pub const MAX_OUTPUT_BYTES: usize = 4 * 1024 * 1024;

/// The most items a `for_each` may expand into. Each is journaled, and each is a step
/// instance of its own.
pub const MAX_FOR_EACH_ITEMS: usize = 500_000;

/// How many items of a `for_each` without `max_parallel` are under way at once. Each running
/// `exec` item holds three open files (its output pipes and its process handle), and each
/// item under way holds its state: starting all of a large fan-out at once ran out of open
/// files ("Too many open files") and took gigabytes. A quarter of what the process may still
/// open, a few hundred kept for the journal and the rest, bounded to [64, 10,000]; the run's
/// own `max_parallel` applies as well.
pub fn items_under_way() -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let open_files = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _hard)| {
        usize::try_from(soft).unwrap_or(usize::MAX)
    });
    (open_files.saturating_sub(256) / 4).clamp(64, 10_000)
}

/// Why a value was refused: it is larger than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("it takes more than {} as JSON, the most an output may hold", bytes(*limit))]
pub struct TooLarge {
    pub limit: usize,
}

/// Checks that `value` takes at most [`MAX_OUTPUT_BYTES`] as JSON.
pub fn check_output(value: &Value) -> Result<(), TooLarge> {
    check_json_size(value, MAX_OUTPUT_BYTES)
}

/// Checks that `value` takes at most `limit` bytes as JSON. Serialises into a counter that
/// gives up as soon as the limit is passed: a small value costs one quick pass and nothing is
/// allocated, a huge one is not serialised in full.
pub fn check_json_size(value: &Value, limit: usize) -> Result<(), TooLarge> {
    let mut counter = Counter { written: 0, limit };
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => Ok(()),
        Err(_) => Err(TooLarge { limit }),
    }
}

/// How a limit in bytes reads: `4 MiB`, `512 KiB`, `100 bytes`.
fn bytes(limit: usize) -> String {
    const MIB: usize = 1024 * 1024;
    match limit {
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= 1024 && n % 1024 == 0 => format!("{} KiB", n / 1024),
        n => format!("{n} bytes"),
    }
}

struct Counter {
    written: usize,
    limit: usize,
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        if self.written > self.limit {
            return Err(io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_value_is_measured_as_the_json_it_is_written_as() {
        let value = json!({"a": [1, 2, 3]});
        let size = serde_json::to_string(&value).unwrap().len();
        assert_eq!(check_json_size(&value, size), Ok(()));
        assert_eq!(
            check_json_size(&value, size - 1),
            Err(TooLarge { limit: size - 1 })
        );
    }

    #[test]
    fn the_limit_reads_in_units() {
        assert_eq!(
            TooLarge {
                limit: MAX_OUTPUT_BYTES
            }
            .to_string(),
            "it takes more than 4 MiB as JSON, the most an output may hold"
        );
    }
}
