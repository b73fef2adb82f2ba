//! Weekly maintenance windows for the `periodic` strategy: days, a start time, a length and a
//! time zone. A window belongs to the day it starts on and may run past midnight (Sat 23:30 for
//! 90 minutes ends Sun 01:00). Start times are wall-clock times in the zone: across a DST change
//! a window starts at the same local time, and a start inside a spring-forward gap begins when the
//! clocks jump over it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// One weekly window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub length: Duration,
}

/// The `periodic` strategy: reboots only inside one of the windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Periodic {
    pub tz: Tz,
    pub windows: Vec<Window>,
}

/// Longest window: a week (a longer one would always be open).
pub const MAX_LENGTH_MINUTES: u32 = 7 * 24 * 60;

impl Periodic {
    /// True when `now` falls inside a window (start inclusive, end exclusive).
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        self.open_window_end(now).is_some()
    }

    /// The end of the window `now` is in, if any (the latest end when windows overlap).
    pub fn open_window_end(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = now.with_timezone(&self.tz).date_naive();
        let mut end = None;
        for w in &self.windows {
            // A window that started up to `length` ago (a week at most) may still be open.
            let back = w.length.num_days() + 1;
            for i in 0..=back {
                let date = today - Duration::days(i);
                let Some(start) = self.start_on(w, date) else {
                    continue;
                };
                let stop = start + w.length;
                if start <= now && now < stop && end.is_none_or(|e| stop > e) {
                    end = Some(stop);
                }
            }
        }
        end
    }

    /// When the next window opens at or after `now` (`now` itself when one is open).
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.contains(now) {
            return Some(now);
        }
        let today = now.with_timezone(&self.tz).date_naive();
        self.windows
            .iter()
            .flat_map(|w| (0..=7).filter_map(move |i| self.start_on(w, today + Duration::days(i))))
            .filter(|s| *s >= now)
            .min()
    }

    /// The instant window `w` starts on local date `date`, if `w` runs on that weekday.
    fn start_on(&self, w: &Window, date: NaiveDate) -> Option<DateTime<Utc>> {
        if !w.days.contains(&date.weekday()) {
            return None;
        }
        let local = date.and_time(w.start);
        // `earliest` picks the first of two instants in a fall-back hour; in a spring-forward
        // gap there is none, and the window starts when the gap ends.
        let at = self.tz.from_local_datetime(&local).earliest().or_else(|| {
            (1..=4)
                .map(|h| local + Duration::minutes(30 * h))
                .find_map(|l| self.tz.from_local_datetime(&l).earliest())
        })?;
        Some(at.with_timezone(&Utc))
    }
}

/// `"Mon"`..`"Sun"` (or full names), case-insensitive.
pub fn parse_day(s: &str) -> Option<Weekday> {
    s.parse::<Weekday>().ok()
}

/// `"HH:MM"`, 24-hour.
pub fn parse_start(s: &str) -> Option<NaiveTime> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn periodic(tz: Tz, days: &[Weekday], start: &str, minutes: i64) -> Periodic {
        Periodic {
            tz,
            windows: vec![Window {
                days: days.to_vec(),
                start: parse_start(start).unwrap(),
                length: Duration::minutes(minutes),
            }],
        }
    }

    #[test]
    fn inside_and_outside_a_plain_window() {
        // 2024-06-01 is a Saturday.
        let p = periodic(Tz::UTC, &[Weekday::Sat], "10:00", 60);
        assert!(!p.contains(at("2024-06-01T09:59:59Z")));
        assert!(p.contains(at("2024-06-01T10:00:00Z")));
        assert!(p.contains(at("2024-06-01T10:59:59Z")));
        assert!(!p.contains(at("2024-06-01T11:00:00Z")), "end is exclusive");
        assert!(
            !p.contains(at("2024-06-02T10:30:00Z")),
            "Sunday is not a window day"
        );
        assert!(p.contains(at("2024-06-08T10:30:00Z")), "next week");
    }

    #[test]
    fn a_window_wraps_midnight_into_the_next_day() {
        let p = periodic(Tz::UTC, &[Weekday::Sat], "23:30", 90);
        assert!(p.contains(at("2024-06-01T23:45:00Z")));
        assert!(
            p.contains(at("2024-06-02T00:59:00Z")),
            "Sunday 00:59 belongs to Saturday's window"
        );
        assert!(!p.contains(at("2024-06-02T01:00:00Z")));
        assert!(
            !p.contains(at("2024-06-02T23:45:00Z")),
            "Sunday has no window of its own"
        );
        // Friday 23:45 is not inside: the window starts on Saturday.
        assert!(!p.contains(at("2024-05-31T23:45:00Z")));
    }

    #[test]
    fn the_window_is_in_its_time_zone() {
        // 22:00 in Berlin (CEST, UTC+2) is 20:00 UTC.
        let p = periodic(chrono_tz::Europe::Berlin, &[Weekday::Sat], "22:00", 60);
        assert!(!p.contains(at("2024-06-01T22:30:00Z")));
        assert!(p.contains(at("2024-06-01T20:30:00Z")));
        // In winter (CET, UTC+1) the same window is 21:00 UTC.
        assert!(p.contains(at("2024-01-06T21:30:00Z")));
        assert!(!p.contains(at("2024-01-06T20:30:00Z")));
        // Across the wrap in a zone east of UTC: Sunday 00:30 Tokyo is Saturday 15:30 UTC.
        let p = periodic(chrono_tz::Asia::Tokyo, &[Weekday::Sat], "23:00", 120);
        assert!(p.contains(at("2024-06-01T15:30:00Z")));
        assert!(!p.contains(at("2024-06-01T16:00:00Z")));
    }

    #[test]
    fn dst_gaps_and_long_windows() {
        // 2024-03-31 02:30 does not exist in Berlin: the window starts at 03:00 CEST (01:00Z).
        let p = periodic(chrono_tz::Europe::Berlin, &[Weekday::Sun], "02:30", 60);
        assert!(!p.contains(at("2024-03-31T00:59:00Z")));
        assert!(p.contains(at("2024-03-31T01:00:00Z")));
        // A window of two days starting Friday covers Saturday and most of Sunday.
        let p = periodic(Tz::UTC, &[Weekday::Fri], "20:00", 48 * 60);
        assert!(p.contains(at("2024-06-02T19:00:00Z")));
        assert!(!p.contains(at("2024-06-02T20:00:00Z")));
    }

    #[test]
    fn next_open_finds_the_coming_start_and_end_is_reported() {
        let p = Periodic {
            tz: Tz::UTC,
            windows: vec![
                Window {
                    days: vec![Weekday::Tue],
                    start: parse_start("03:00").unwrap(),
                    length: Duration::minutes(30),
                },
                Window {
                    days: vec![Weekday::Sat, Weekday::Sun],
                    start: parse_start("22:00").unwrap(),
                    length: Duration::minutes(240),
                },
            ],
        };
        // Wednesday noon: the next is Saturday 22:00.
        assert_eq!(
            p.next_open(at("2024-06-05T12:00:00Z")),
            Some(at("2024-06-08T22:00:00Z"))
        );
        // Monday 12:00: Tuesday 03:00 first.
        assert_eq!(
            p.next_open(at("2024-06-03T12:00:00Z")),
            Some(at("2024-06-04T03:00:00Z"))
        );
        let now = at("2024-06-09T01:00:00Z");
        assert_eq!(p.next_open(now), Some(now));
        assert_eq!(p.open_window_end(now), Some(at("2024-06-09T02:00:00Z")));
    }

    #[test]
    fn parsing_days_and_times() {
        assert_eq!(parse_day("Sat"), Some(Weekday::Sat));
        assert_eq!(parse_day("sunday"), Some(Weekday::Sun));
        assert_eq!(parse_day("Caturday"), None);
        assert_eq!(parse_start("23:30"), NaiveTime::from_hms_opt(23, 30, 0));
        for bad in ["24:00", "7:30", "12:60", "1230", "ab:cd"] {
            assert_eq!(parse_start(bad), None, "{bad}");
        }
    }
}
