//! Scheduled conferences (reference 001 §7, MX Proxy): a room booked by a user for a
//! time window, entered by keying its `accessId` at the conference access number.
//!
//! The store keeps them and they travel in the [`crate::users::DirectorySnapshot`],
//! so the engine reads them without waiting on the database and a change made by the
//! CLI or another process arrives like any directory change. The room of a scheduled
//! conference has the access id as its room number.
//!
//! When a conference is open ([`ScheduledConference::window`]):
//! - `Once`: from `startDate` for `duration` minutes;
//! - `Daily` / `Weekly`: that window again every day / week from `startDate` on;
//! - `Permanent`: from `startDate` on, with no end (`duration` is not used).
//!
//! Every kind opens a little early (`[ivr] early_join_s`), so callers who dial in a
//! minute before the start are let in. A conference running when its window closes is
//! not cut off: the window governs who may enter.

use crate::users::{DomainId, UserId};

/// Now in Unix seconds (the windows are wall-clock times).
pub fn unix_now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// How a conference repeats. MX shows only `Once`; the others are ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recurrence {
    Once,
    Daily,
    Weekly,
    Permanent,
}

impl Recurrence {
    pub const ALL: [Recurrence; 4] = [Recurrence::Once, Recurrence::Daily, Recurrence::Weekly, Recurrence::Permanent];

    /// The MX `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Recurrence::Once => "Once",
            Recurrence::Daily => "Daily",
            Recurrence::Weekly => "Weekly",
            Recurrence::Permanent => "Permanent",
        }
    }

    /// From an MX `type`, case-insensitively.
    pub fn parse(s: &str) -> Option<Recurrence> {
        Self::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The period between windows, in seconds (None: a single window).
    fn period_s(self) -> Option<i64> {
        match self {
            Recurrence::Daily => Some(86_400),
            Recurrence::Weekly => Some(7 * 86_400),
            Recurrence::Once | Recurrence::Permanent => None,
        }
    }
}

/// One scheduled conference, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledConference {
    /// Store id; MX shows it as the string `"Id"`.
    pub id: i64,
    pub domain_id: DomainId,
    /// The user who booked it (MX `ownerId`, the user's JID).
    pub owner_id: UserId,
    pub name: String,
    pub description: Option<String>,
    /// The participant code keyed at the access number; unique in its domain.
    pub access_id: u64,
    pub kind: Recurrence,
    /// Unix seconds.
    pub start_s: i64,
    /// Minutes.
    pub duration_min: u32,
    /// Participants hear music until the owner joins.
    pub wait_for_owner: bool,
    /// The room ends when the owner leaves it.
    pub del_on_owner_leave: bool,
    /// MX's web-sharing fields, kept and echoed (`"None"`, `"Undefined"`).
    pub ws: String,
    pub ws_type: String,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// Whether a conference can be entered at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Before its (next) window opens, at these Unix seconds.
    NotStarted { opens_s: i64 },
    Open,
    /// A `Once` conference whose window has passed.
    Ended,
}

impl ScheduledConference {
    /// The room number its participants meet in.
    pub fn room_number(&self) -> String {
        self.access_id.to_string()
    }

    /// Whether it can be entered at `now_s` (Unix seconds), opening `early_s` before
    /// each start.
    pub fn window(&self, now_s: i64, early_s: i64) -> Window {
        let len = i64::from(self.duration_min) * 60;
        let opens = self.start_s - early_s;
        if now_s < opens {
            return Window::NotStarted { opens_s: opens };
        }
        match (self.kind, self.kind.period_s()) {
            (Recurrence::Permanent, _) => Window::Open,
            (_, None) => {
                if now_s < self.start_s + len {
                    Window::Open
                } else {
                    Window::Ended
                }
            }
            (_, Some(period)) => {
                // The latest start at or before now + early (the next window may open early).
                let k = (now_s + early_s - self.start_s).div_euclid(period);
                let start = self.start_s + k * period;
                if now_s < start + len || now_s >= start - early_s && now_s < start {
                    Window::Open
                } else {
                    Window::NotStarted { opens_s: start + period - early_s }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(kind: Recurrence, start_s: i64, duration_min: u32) -> ScheduledConference {
        ScheduledConference {
            id: 1,
            domain_id: 1,
            owner_id: 7,
            name: "weekly sync".into(),
            description: None,
            access_id: 4728,
            kind,
            start_s,
            duration_min,
            wait_for_owner: false,
            del_on_owner_leave: false,
            ws: "None".into(),
            ws_type: "Undefined".into(),
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn once_is_open_from_a_little_before_the_start_for_its_duration() {
        let c = conf(Recurrence::Once, 10_000, 30);
        assert_eq!(c.window(9_000, 300), Window::NotStarted { opens_s: 9_700 });
        assert_eq!(c.window(9_700, 300), Window::Open);
        assert_eq!(c.window(10_000 + 30 * 60 - 1, 300), Window::Open);
        assert_eq!(c.window(10_000 + 30 * 60, 300), Window::Ended);
    }

    #[test]
    fn daily_opens_again_each_day_and_never_ends() {
        let c = conf(Recurrence::Daily, 100_000, 60);
        assert_eq!(c.window(100_000 + 3_600, 0), Window::NotStarted { opens_s: 186_400 });
        assert_eq!(c.window(186_400 + 10, 0), Window::Open);
        // Early entry to the next day's window.
        assert_eq!(c.window(186_400 - 100, 300), Window::Open);
        assert_eq!(c.window(186_400 - 400, 300), Window::NotStarted { opens_s: 186_100 });
    }

    #[test]
    fn weekly_repeats_every_seven_days() {
        let c = conf(Recurrence::Weekly, 0, 30);
        assert_eq!(c.window(86_400, 0), Window::NotStarted { opens_s: 604_800 });
        assert_eq!(c.window(604_800 + 60, 0), Window::Open);
    }

    #[test]
    fn permanent_is_open_once_started() {
        let c = conf(Recurrence::Permanent, 1_000, 0);
        assert_eq!(c.window(999, 0), Window::NotStarted { opens_s: 1_000 });
        assert_eq!(c.window(1_000_000_000, 0), Window::Open);
    }

    #[test]
    fn types_parse_case_insensitively() {
        assert_eq!(Recurrence::parse("once"), Some(Recurrence::Once));
        assert_eq!(Recurrence::parse(" Weekly "), Some(Recurrence::Weekly));
        assert_eq!(Recurrence::parse("Monthly"), None);
    }
}
