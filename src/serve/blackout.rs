//! Periods in which a schedule does not fire: dates, ranges and freeze calendars.
//!
//! Every blackout is a half-open interval `[start, end)`: a fire exactly at the start is
//! suppressed, a fire exactly at the end happens. A date blacks out that whole day in the
//! schedule's time zone (from its first instant to the first instant of the next day, so a
//! DST day of 23 or 25 hours is covered whole).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// One period without fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blackout {
    /// The first instant without fires.
    pub start: Timestamp,
    /// The first instant with fires again.
    pub end: Timestamp,
    /// What a log or `runbook schedules` says about it: `date 2026-12-24`,
    /// `freeze.ics: Year-end freeze`.
    pub what: String,
}

impl Blackout {
    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    /// The whole local day `date` in `zone`.
    pub fn day(date: Date, zone: &TimeZone, what: String) -> Result<Blackout, String> {
        let start = start_of_day(date, zone)?;
        let next = date
            .tomorrow()
            .map_err(|e| format!("no day after {date}: {e}"))?;
        let end = start_of_day(next, zone)?;
        Ok(Blackout { start, end, what })
    }
}

fn start_of_day(date: Date, zone: &TimeZone) -> Result<Timestamp, String> {
    date.to_zoned(zone.clone())
        .and_then(|day| day.start_of_day())
        .map(|start| start.timestamp())
        .map_err(|e| format!("cannot place {date} in the time zone: {e}"))
}

/// A moment as a config writes it: `2026-12-20`, `2026-12-20T02:00` (in the schedule's
/// zone), `2026-12-20T02:00+01:00`, `2026-12-20T01:00Z` or
/// `2026-12-20T02:00+01:00[Europe/Berlin]`. A date means its first instant.
pub fn parse_moment(text: &str, zone: &TimeZone) -> Result<Timestamp, String> {
    if let Ok(zoned) = text.parse::<Zoned>() {
        return Ok(zoned.timestamp());
    }
    if let Ok(timestamp) = text.parse::<Timestamp>() {
        return Ok(timestamp);
    }
    if let Ok(civil) = text.parse::<DateTime>() {
        // A time the clocks skip (DST gap) moves forward; a repeated one takes the earlier.
        return civil
            .to_zoned(zone.clone())
            .map(|z| z.timestamp())
            .map_err(|e| format!("`{text}` cannot be placed in the time zone: {e}"));
    }
    if let Ok(date) = text.parse::<Date>() {
        return start_of_day(date, zone);
    }
    Err(format!(
        "`{text}` is not a date or a time: write 2026-12-20, 2026-12-20T02:00 or \
         2026-12-20T02:00+01:00"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    #[test]
    fn a_range_holds_its_start_and_not_its_end() {
        let zone = berlin();
        let blackout = Blackout {
            start: parse_moment("2026-12-20T02:00", &zone).unwrap(),
            end: parse_moment("2026-12-20T04:00", &zone).unwrap(),
            what: "range".into(),
        };
        assert!(blackout.contains(parse_moment("2026-12-20T02:00", &zone).unwrap()));
        assert!(blackout.contains(parse_moment("2026-12-20T03:59:59", &zone).unwrap()));
        assert!(!blackout.contains(parse_moment("2026-12-20T04:00", &zone).unwrap()));
        assert!(!blackout.contains(parse_moment("2026-12-20T01:59:59", &zone).unwrap()));
    }

    #[test]
    fn a_date_covers_a_whole_dst_day_of_23_hours() {
        let zone = berlin();
        let day = Blackout::day("2026-03-29".parse().unwrap(), &zone, "d".into()).unwrap();
        assert_eq!(day.end.duration_since(day.start).as_hours(), 23);
        assert!(day.contains(parse_moment("2026-03-29T23:59:59", &zone).unwrap()));
        assert!(!day.contains(parse_moment("2026-03-30T00:00", &zone).unwrap()));
        let fall = Blackout::day("2026-10-25".parse().unwrap(), &zone, "d".into()).unwrap();
        assert_eq!(fall.end.duration_since(fall.start).as_hours(), 25);
    }

    #[test]
    fn a_leap_day_is_a_day() {
        let zone = TimeZone::get("America/New_York").unwrap();
        let day = Blackout::day("2028-02-29".parse().unwrap(), &zone, "d".into()).unwrap();
        assert_eq!(
            day.start,
            "2028-02-29T05:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            day.end,
            "2028-03-01T05:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!("2027-02-29".parse::<Date>().is_err(), "no Feb 29 in 2027");
    }

    #[test]
    fn moments_take_offsets_zones_or_the_schedules_zone() {
        let zone = berlin();
        let utc = "2026-12-20T01:00:00Z".parse::<Timestamp>().unwrap();
        for text in [
            "2026-12-20T02:00",
            "2026-12-20T02:00+01:00",
            "2026-12-20T01:00Z",
            "2026-12-20T02:00+01:00[Europe/Berlin]",
        ] {
            assert_eq!(parse_moment(text, &zone).unwrap(), utc, "{text}");
        }
        assert!(parse_moment("christmas", &zone).is_err());
    }
}
