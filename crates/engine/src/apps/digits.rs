//! Collecting a caller's digits: a room number, a PIN, a menu choice.
//!
//! Digits come from the media (RFC 4733) or from SIP INFO alike (both arrive as
//! [`crate::legs::LegEvent::Dtmf`]). An entry ends on `#` or `*` (both always work, as
//! SEMS's webconference accepts either whatever its prompt says), when it reaches its
//! maximum length, or when the caller pauses longer than the inter-digit timeout after
//! a digit. A-D are not part of any entry and are ignored.

use std::time::{Duration, Instant};

/// What one digit did to the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// More digits may follow; the entry is submitted at `deadline` if none does.
    Collecting { deadline: Instant },
    /// The entry is complete (a terminator, or the maximum length).
    Done(String),
    /// The digit is not part of entries (A-D); nothing changed.
    Ignored,
}

#[derive(Debug, Clone)]
pub(crate) struct DigitCollector {
    digits: String,
    max_digits: usize,
    inter_digit: Duration,
}

impl DigitCollector {
    pub fn new(max_digits: usize, inter_digit: Duration) -> DigitCollector {
        DigitCollector { digits: String::new(), max_digits: max_digits.max(1), inter_digit }
    }

    pub fn push(&mut self, now: Instant, digit: char) -> Entry {
        match digit {
            '#' | '*' => Entry::Done(std::mem::take(&mut self.digits)),
            '0'..='9' => {
                self.digits.push(digit);
                if self.digits.len() >= self.max_digits {
                    Entry::Done(std::mem::take(&mut self.digits))
                } else {
                    Entry::Collecting { deadline: now + self.inter_digit }
                }
            }
            _ => Entry::Ignored,
        }
    }

    /// The caller paused past the deadline: what was entered so far, if anything.
    pub fn timeout(&mut self) -> Option<String> {
        (!self.digits.is_empty()).then(|| std::mem::take(&mut self.digits))
    }

    pub fn is_empty(&self) -> bool {
        self.digits.is_empty()
    }

    pub fn clear(&mut self) {
        self.digits.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminators_length_and_pauses_end_an_entry() {
        let t = Instant::now();
        let mut c = DigitCollector::new(4, Duration::from_secs(5));
        assert_eq!(c.push(t, '1'), Entry::Collecting { deadline: t + Duration::from_secs(5) });
        assert_eq!(c.push(t, 'A'), Entry::Ignored);
        assert_eq!(c.push(t, '2'), Entry::Collecting { deadline: t + Duration::from_secs(5) });
        assert_eq!(c.push(t, '#'), Entry::Done("12".into()));
        assert!(c.is_empty());
        // `*` ends an entry too, and an empty one is still an entry (the caller decides).
        assert_eq!(c.push(t, '*'), Entry::Done(String::new()));
        for d in ['9', '8', '7'] {
            assert!(matches!(c.push(t, d), Entry::Collecting { .. }));
        }
        assert_eq!(c.push(t, '6'), Entry::Done("9876".into()));
        assert_eq!(c.timeout(), None);
        c.push(t, '5');
        assert_eq!(c.timeout(), Some("5".into()));
        assert!(c.is_empty());
    }
}
