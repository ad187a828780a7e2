//! Cursors and the one rule that decides what a resuming client gets.
//!
//! A [`Cursor`] says "I have seen everything up to `after` in `epoch`". The
//! hub answers with every retained notification newer than that, oldest
//! first. When it cannot honour the cursor exactly it never stays silent: the
//! answer carries a [`ResetReason`] and then everything it still retains.
//! [`plan_replay`] is that rule as a pure function, so it can be tested
//! against every sequence of publishes and cursors.

use std::fmt;

use crate::notification::{Epoch, NotificationId};

/// "I have seen everything up to `after`", in `epoch` when the client knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub after: NotificationId,
    /// `None` where the transport cannot carry one (`?after=` alone): the
    /// cursor is then taken to be of the current epoch.
    pub epoch: Option<Epoch>,
}

impl Cursor {
    pub fn new(after: NotificationId, epoch: Option<Epoch>) -> Self {
        Cursor { after, epoch }
    }
}

/// Why a cursor could not be honoured exactly. The client has missed
/// something, or cannot know whether it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The cursor names another lifetime of the hub's history.
    EpochChanged,
    /// Notifications after the cursor were already dropped from retention.
    CursorTooOld,
    /// The cursor is newer than anything this epoch has published.
    CursorAhead,
    /// A live subscriber fell further behind than the hub retains.
    FellBehind,
}

impl ResetReason {
    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::EpochChanged => "epoch_changed",
            ResetReason::CursorTooOld => "cursor_too_old",
            ResetReason::CursorAhead => "cursor_ahead",
            ResetReason::FellBehind => "fell_behind",
        }
    }
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to replay for a cursor: everything retained with `id > after`,
/// preceded by a reset when `reset` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayPlan {
    pub reset: Option<ResetReason>,
    pub after: NotificationId,
}

/// The hub's retained window: ids `oldest..=newest` are held (none when
/// `oldest > newest`); `newest` is the last id ever assigned in this epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    pub oldest: NotificationId,
    pub newest: NotificationId,
}

/// Decides what a client with `cursor` gets. No cursor at all is a newcomer:
/// it gets what is retained and no reset, for it had nothing to lose.
pub fn plan_replay(current: &Epoch, retained: Retained, cursor: Option<&Cursor>) -> ReplayPlan {
    let everything = |reason| ReplayPlan {
        reset: Some(reason),
        after: 0,
    };
    let Some(cursor) = cursor else {
        return ReplayPlan {
            reset: None,
            after: 0,
        };
    };
    if cursor.epoch.as_ref().is_some_and(|e| e != current) {
        return everything(ResetReason::EpochChanged);
    }
    if cursor.after > retained.newest {
        return everything(ResetReason::CursorAhead);
    }
    // The client next needs `after + 1`; if that is no longer held, and
    // something was published after the cursor, it has missed notifications.
    if cursor.after + 1 < retained.oldest {
        return everything(ResetReason::CursorTooOld);
    }
    ReplayPlan {
        reset: None,
        after: cursor.after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch() -> Epoch {
        Epoch::parse("e1").unwrap()
    }

    fn window(oldest: u64, newest: u64) -> Retained {
        Retained { oldest, newest }
    }

    fn at(after: u64) -> Cursor {
        Cursor::new(after, Some(epoch()))
    }

    #[test]
    fn newcomer_gets_everything_without_reset() {
        let plan = plan_replay(&epoch(), window(10, 20), None);
        assert_eq!(
            plan,
            ReplayPlan {
                reset: None,
                after: 0
            }
        );
    }

    #[test]
    fn cursor_inside_the_window_resumes_exactly() {
        for after in 9..=20 {
            let plan = plan_replay(&epoch(), window(10, 20), Some(&at(after)));
            assert_eq!(plan, ReplayPlan { reset: None, after });
        }
    }

    #[test]
    fn cursor_before_the_window_is_a_reset() {
        let plan = plan_replay(&epoch(), window(10, 20), Some(&at(8)));
        assert_eq!(plan.reset, Some(ResetReason::CursorTooOld));
        assert_eq!(plan.after, 0);
    }

    #[test]
    fn cursor_ahead_of_the_epoch_is_a_reset() {
        let plan = plan_replay(&epoch(), window(10, 20), Some(&at(21)));
        assert_eq!(plan.reset, Some(ResetReason::CursorAhead));
    }

    #[test]
    fn another_epoch_is_a_reset_whatever_the_id() {
        let other = Cursor::new(15, Epoch::parse("e0"));
        let plan = plan_replay(&epoch(), window(10, 20), Some(&other));
        assert_eq!(plan.reset, Some(ResetReason::EpochChanged));
    }

    #[test]
    fn cursor_without_epoch_is_taken_as_current() {
        let plan = plan_replay(&epoch(), window(10, 20), Some(&Cursor::new(15, None)));
        assert_eq!(
            plan,
            ReplayPlan {
                reset: None,
                after: 15
            }
        );
    }

    #[test]
    fn empty_hub_accepts_zero_only() {
        let empty = window(1, 0);
        assert_eq!(plan_replay(&epoch(), empty, Some(&at(0))).reset, None);
        assert_eq!(
            plan_replay(&epoch(), empty, Some(&at(1))).reset,
            Some(ResetReason::CursorAhead)
        );
    }
}
