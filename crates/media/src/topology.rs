//! Who hears whom in a room, beyond the default (everyone hears everyone but
//! themselves).
//!
//! The engine resolves the conference API's `{from, to, enabled}` rules, including `*`,
//! into the explicit set of blocked voice paths (speaker leg -> listener leg) and hands
//! us the whole set; mute (nobody hears a leg) and deaf (a leg hears nobody) are per-leg
//! flags kept on the leg. The mixer only asks one question per (selected speaker,
//! listener): [`Topology::blocks`]. A listener for whom the answer is "yes" for some
//! selected speaker is a *topology exception* and gets its own mix; everyone else
//! shares the room's common encode.

use crate::engine::LegId;
use std::collections::HashSet;

#[derive(Clone, Debug, Default)]
pub struct Topology {
    blocked: HashSet<(LegId, LegId)>,
    /// Listeners with at least one blocked speaker, to skip the set lookups for the
    /// common case of a listener without exceptions.
    listeners_with_blocks: HashSet<LegId>,
}

impl Topology {
    /// Replace the blocked set: each `(from, to)` means `to` does not hear `from`.
    pub fn set_blocked(&mut self, blocked: Vec<(LegId, LegId)>) {
        self.listeners_with_blocks = blocked.iter().map(|&(_, to)| to).collect();
        self.blocked = blocked.into_iter().filter(|(a, b)| a != b).collect();
    }

    /// Does `listener` not hear `speaker`?
    pub fn blocks(&self, speaker: LegId, listener: LegId) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&(speaker, listener))
    }

    /// Could this listener have an exception at all?
    pub fn has_exceptions(&self, listener: LegId) -> bool {
        !self.listeners_with_blocks.is_empty() && self.listeners_with_blocks.contains(&listener)
    }

    /// No blocked paths: everyone hears everyone (but themselves).
    pub fn is_default(&self) -> bool {
        self.blocked.is_empty()
    }

    /// Forget a released leg.
    pub fn remove_leg(&mut self, leg: LegId) {
        if self.blocked.is_empty() {
            return;
        }
        self.blocked.retain(|&(a, b)| a != leg && b != leg);
        self.listeners_with_blocks.remove(&leg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_pair_is_directional() {
        let mut t = Topology::default();
        t.set_blocked(vec![(LegId(1), LegId(2))]);
        assert!(t.blocks(LegId(1), LegId(2)));
        assert!(!t.blocks(LegId(2), LegId(1)));
        assert!(t.has_exceptions(LegId(2)));
        assert!(!t.has_exceptions(LegId(1)));
        t.remove_leg(LegId(1));
        assert!(!t.blocks(LegId(1), LegId(2)));
    }
}
