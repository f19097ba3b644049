//! Freeze calendars: the events of an iCalendar (.ics) file as blackouts.
//!
//! The `ical` crate reads the file into components and properties; the dates are read here
//! with jiff, which knows the IANA time zones. What is understood:
//! - all-day events (`DTSTART;VALUE=DATE:20261224`): whole days in the schedule's zone, the
//!   end date excluded as RFC 5545 says (one day when there is no `DTEND`);
//! - times in UTC (`...T020000Z`), with a `TZID` parameter naming an IANA zone, or floating
//!   (no zone: the schedule's);
//! - `DTEND` or `DURATION` (`PT2H`, `P1D`).
//!
//! Recurring events (`RRULE`, `RDATE`) are refused, not ignored: a freeze that silently
//! covers only its first occurrence would be worse than an error.

use super::blackout::Blackout;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use std::io::BufReader;
use std::path::Path;

/// Every event of the calendar at `path` as a blackout.
pub fn read_calendar(path: &Path, zone: &TimeZone) -> Result<Vec<Blackout>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    parse_calendar(BufReader::new(file), zone, &file_name(path))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

pub fn parse_calendar(
    reader: impl std::io::BufRead,
    zone: &TimeZone,
    name: &str,
) -> Result<Vec<Blackout>, String> {
    let mut blackouts = Vec::new();
    for calendar in ical::IcalParser::new(reader) {
        let calendar = calendar.map_err(|e| format!("not a valid iCalendar file: {e}"))?;
        for event in calendar.events {
            blackouts.push(event_blackout(&event.properties, zone, name)?);
        }
    }
    Ok(blackouts)
}

fn event_blackout(
    properties: &[ical::property::Property],
    zone: &TimeZone,
    name: &str,
) -> Result<Blackout, String> {
    let find = |key: &str| properties.iter().find(|p| p.name.eq_ignore_ascii_case(key));
    let summary = find("SUMMARY")
        .and_then(|p| p.value.clone())
        .unwrap_or_else(|| "(no summary)".to_owned());
    let about = format!("event `{summary}`");
    if let Some(rule) = find("RRULE").or_else(|| find("RDATE")) {
        return Err(format!(
            "{about} repeats ({}): recurring events are not supported; list each occurrence \
             as its own event",
            rule.name
        ));
    }
    let start = find("DTSTART").ok_or_else(|| format!("{about} has no DTSTART"))?;
    let start = Moment::read(start, zone).map_err(|e| format!("{about}: DTSTART {e}"))?;
    let end = match (find("DTEND"), find("DURATION")) {
        (Some(end), _) => {
            Moment::read(end, zone)
                .map_err(|e| format!("{about}: DTEND {e}"))?
                .at
        }
        (None, Some(duration)) => {
            let text = duration.value.as_deref().unwrap_or_default();
            let span: Span = text
                .parse()
                .map_err(|e| format!("{about}: DURATION `{text}` is not a duration: {e}"))?;
            start
                .at
                .to_zoned(zone.clone())
                .checked_add(span)
                .map_err(|e| format!("{about}: DURATION `{text}`: {e}"))?
                .timestamp()
        }
        // RFC 5545: an all-day event without an end lasts the day; a timed one, an instant.
        (None, None) if start.all_day => {
            let day = start.at.to_zoned(zone.clone()).date();
            Blackout::day(day, zone, String::new())?.end
        }
        (None, None) => start.at,
    };
    if end < start.at {
        return Err(format!("{about} ends before it starts"));
    }
    Ok(Blackout {
        start: start.at,
        end,
        what: format!("{name}: {summary}"),
    })
}

struct Moment {
    at: Timestamp,
    all_day: bool,
}

impl Moment {
    fn read(property: &ical::property::Property, zone: &TimeZone) -> Result<Moment, String> {
        let text = property.value.as_deref().unwrap_or_default().trim();
        let param = |key: &str| {
            property
                .params
                .iter()
                .flatten()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, values)| values.first())
        };
        let wrong = || format!("`{text}` is not an iCalendar date or date-time");
        if param("VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE")) || text.len() == 8 {
            let date = Date::strptime("%Y%m%d", text).map_err(|_| wrong())?;
            let start = Blackout::day(date, zone, String::new())?.start;
            return Ok(Moment {
                at: start,
                all_day: true,
            });
        }
        if let Some(utc) = text.strip_suffix('Z') {
            let civil = DateTime::strptime("%Y%m%dT%H%M%S", utc).map_err(|_| wrong())?;
            let at = civil.to_zoned(TimeZone::UTC).map_err(|e| e.to_string())?;
            return Ok(Moment {
                at: at.timestamp(),
                all_day: false,
            });
        }
        let civil = DateTime::strptime("%Y%m%dT%H%M%S", text).map_err(|_| wrong())?;
        let in_zone = match param("TZID") {
            Some(id) => TimeZone::get(id.trim_matches('"')).map_err(|_| {
                format!("names the time zone `{id}`, which is not an IANA time zone")
            })?,
            None => zone.clone(),
        };
        let at = civil.to_zoned(in_zone).map_err(|e| e.to_string())?;
        Ok(Moment {
            at: at.timestamp(),
            all_day: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<Blackout>, String> {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n"
        );
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        parse_calendar(text.as_bytes(), &zone, "freeze.ics")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn an_all_day_event_covers_its_days_in_the_schedules_zone_end_date_excluded() {
        let events = parse(
            "BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Year-end freeze\r\nDTSTART;VALUE=DATE:20261221\r\n\
             DTEND;VALUE=DATE:20270104\r\nEND:VEVENT\r\n",
        )
        .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].start, at("2026-12-20T23:00:00Z"));
        assert_eq!(events[0].end, at("2027-01-03T23:00:00Z"));
        assert_eq!(events[0].what, "freeze.ics: Year-end freeze");
    }

    #[test]
    fn an_all_day_event_without_end_is_one_day() {
        let events =
            parse("BEGIN:VEVENT\r\nUID:1\r\nDTSTART;VALUE=DATE:20281229\r\nEND:VEVENT\r\n")
                .unwrap();
        assert_eq!(events[0].start, at("2028-12-28T23:00:00Z"));
        assert_eq!(events[0].end, at("2028-12-29T23:00:00Z"));
    }

    #[test]
    fn timed_events_read_utc_tzid_floating_and_duration() {
        let events = parse(
            "BEGIN:VEVENT\r\nUID:1\r\nDTSTART:20261220T010000Z\r\nDTEND:20261220T030000Z\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:2\r\nDTSTART;TZID=America/New_York:20260308T013000\r\n\
             DURATION:PT2H\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:3\r\nDTSTART:20260329T010000\r\nDTEND:20260329T040000\r\nEND:VEVENT\r\n",
        )
        .unwrap();
        assert_eq!(
            (events[0].start, events[0].end),
            (at("2026-12-20T01:00:00Z"), at("2026-12-20T03:00:00Z"))
        );
        // 01:30 EST, two hours of elapsed time across the spring-forward gap: 04:30 EDT.
        assert_eq!(events[1].start, at("2026-03-08T06:30:00Z"));
        assert_eq!(events[1].end, at("2026-03-08T08:30:00Z"));
        // Floating: Berlin, across its own spring-forward (02:00 -> 03:00): two real hours.
        assert_eq!(events[2].start, at("2026-03-29T00:00:00Z"));
        assert_eq!(events[2].end, at("2026-03-29T02:00:00Z"));
    }

    #[test]
    fn recurring_events_and_unknown_zones_are_refused() {
        let error = parse(
            "BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Weekly\r\nDTSTART:20261220T010000Z\r\n\
             RRULE:FREQ=WEEKLY\r\nEND:VEVENT\r\n",
        )
        .unwrap_err();
        assert!(
            error.contains("recurring events are not supported"),
            "{error}"
        );
        let error = parse(
            "BEGIN:VEVENT\r\nUID:1\r\nDTSTART;TZID=W. Europe Standard Time:20261220T010000\r\nEND:VEVENT\r\n",
        )
        .unwrap_err();
        assert!(error.contains("not an IANA time zone"), "{error}");
    }
}
