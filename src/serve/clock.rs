//! The wall clock serve reads, behind a trait so that tests move it where they want
//! (forward, backward, across a DST change) and check what fires.

use jiff::Timestamp;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock: what NTP steps and a person's `date -s` change.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until the test moves it.
#[cfg(test)]
pub struct FakeClock(std::sync::Mutex<Timestamp>);

#[cfg(test)]
impl FakeClock {
    pub fn at(text: &str) -> FakeClock {
        FakeClock(std::sync::Mutex::new(
            text.parse().expect("a test timestamp"),
        ))
    }

    pub fn set(&self, text: &str) {
        *self.0.lock().unwrap() = text.parse().expect("a test timestamp");
    }
}

#[cfg(test)]
impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}
