//! The voicemail application: leaving a message for a user who did not take a call,
//! and hearing one's new messages at the voicemail number (issue 11).
//!
//! ```text
//!  deposit (the bridge hands over the caller of a call not answered within the user's
//!  vmDelay, or refused busy, or to a user with nothing registered):
//!    answer → greeting (the user's own `voicemail/<user id>/greeting.wav`, else
//!    vm_greeting) → beep → record the caller until hang-up, `#`, or max_message
//!    → EngineEvent::VoicemailRecorded (the shell trims, measures, stores, sends MWI)
//!
//!  access (INVITE sip:<[voicemail] number>@…):
//!    answer → the caller's own mailbox if authenticated as a user, else
//!    vm_enter_mailbox, extension # → vm_enter_pin, PIN # → EngineEvent::VoicemailLogin
//!    (the shell checks the PIN, argon2, off this thread) → Engine::voicemail_login:
//!    wrong → wrong_pin, again (limited) | right → vm_you_have <n> vm_new_message(s),
//!    then each message (vm_message, the audio) → VoicemailPlayed (marked read) → vm_goodbye
//! ```
//!
//! Recording uses the media API as it is: the caller is put alone into a media room of
//! its own (ids from [`MEDIA_ROOM_BASE`], clear of the room application's and of the
//! bridge's) and a recorder tap takes that room's mix, which is the caller's voice
//! while the talk detector hears it and silence otherwise. The engine is sans-IO: the
//! media engine's writer thread makes the file; trimming and storing are the shell's.

use super::digits::{DigitCollector, Entry};
use super::Owner;
use crate::call::{CallId, Party};
use crate::engine::{EngineConfig, EngineEvent};
use crate::legs::{LegEvent, LegId, Legs};
use crate::users::UserId;
use media::{Attachment, PromptEnd, PromptId, PromptPart, PromptSpec};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::info;

/// Media room ids for recordings start here: the bridge's calls count up from 2^40,
/// the room application's rooms are far below.
pub(crate) const MEDIA_ROOM_BASE: u64 = 1 << 41;

/// Owner timer tags start here, so timers the bridge set on a leg before handing it
/// over (ring time, wake wait) are stale when they fire.
const TIMER_BASE: u32 = 1000;

/// `[voicemail]`: who gets a mailbox and how messages are taken.
#[derive(Debug, Clone)]
pub struct VoicemailConfig {
    /// Unanswered, busy and unreachable calls to users go to their mailbox.
    pub enabled: bool,
    /// The Request-URI user of the voicemail access number.
    pub number: String,
    /// Ringing before voicemail takes a call, for users whose call mode (MX `vmDelay`)
    /// does not say.
    pub default_delay: Duration,
    /// A message is cut at this length.
    pub max_message: Duration,
    /// Wrong PINs and silent rounds before goodbye at the access number.
    pub max_attempts: u32,
}

impl Default for VoicemailConfig {
    fn default() -> Self {
        VoicemailConfig { enabled: false, number: "voicemail".into(), default_delay: Duration::from_secs(30), max_message: Duration::from_secs(120), max_attempts: 3 }
    }
}

/// Whose mailbox a caller is leaving a message in, and who the caller is.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    pub user_id: UserId,
    /// The owner's extension (or login): `to` of the message.
    pub owner: String,
    pub caller: Party,
    pub call: Option<CallId>,
}

/// A PIN keyed at the voicemail number, on its way to the shell: never shown (its
/// Debug is redacted and it is not serialised into `/v1/events`).
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(pub String);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(***)")
    }
}

/// A message to play at the access number: its id and file (relative to the data dir).
pub type MessageRef = (i64, String);

#[derive(Debug)]
enum Stage {
    Greeting { own: bool },
    Beep,
    Recording { via: media::LegId, room: media::RoomId, file: String, started_ms: u64 },
    /// Access number: keying the mailbox (extension).
    Mailbox,
    Pin { user_id: UserId },
    /// The PIN is with the shell.
    Checking { user_id: UserId },
    /// The count, then each message; `current` is the one playing.
    Listening { user_id: UserId, queue: VecDeque<MessageRef>, current: Option<i64> },
    Goodbye,
}

struct Session {
    stage: Stage,
    mailbox: Option<Mailbox>,
    prompt: Option<PromptId>,
    timer: u32,
    digits: DigitCollector,
    attempts: u32,
}

pub(crate) struct Voicemail {
    cfg: Arc<EngineConfig>,
    sessions: HashMap<LegId, Session>,
    next_room: u64,
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Voicemail {
    pub fn new(cfg: Arc<EngineConfig>) -> Voicemail {
        Voicemail { cfg, sessions: HashMap::new(), next_room: MEDIA_ROOM_BASE }
    }

    fn session(&self, stage: Stage, mailbox: Option<Mailbox>) -> Session {
        Session { stage, mailbox, prompt: None, timer: TIMER_BASE, digits: DigitCollector::new(self.cfg.ivr.max_digits, self.cfg.ivr.inter_digit_timeout), attempts: 0 }
    }

    /// The caller of an unanswered call: answer it (if not yet) and take a message.
    pub fn deposit(&mut self, now: Instant, legs: &mut Legs, id: &LegId, mailbox: Mailbox) {
        let Some(leg) = legs.get_mut(id) else { return };
        leg.owner = Owner::Voicemail;
        let unanswered = leg.answered.is_none();
        if unanswered && legs.answer(now, id).is_err() {
            return;
        }
        // It may have heard the callee's early media through the call's room.
        legs.attach(id, Attachment::None);
        info!(leg = %id, user = mailbox.user_id, "voicemail: taking a message");
        let greeting = format!("voicemail/{}/greeting.wav", mailbox.user_id);
        self.sessions.insert(id.clone(), self.session(Stage::Greeting { own: true }, Some(mailbox)));
        self.play(legs, id, vec![PromptPart::File(self.cfg.data_dir.join(greeting))], false);
    }

    /// A call to the access number. `caller`: the authenticated caller's user, whose
    /// mailbox it is; None: the caller keys the extension first.
    pub fn on_incoming(&mut self, now: Instant, legs: &mut Legs, id: &LegId, caller: Option<UserId>) {
        if legs.answer(now, id).is_err() {
            return;
        }
        info!(leg = %id, user = ?caller, "voicemail number");
        let (stage, prompt) = match caller {
            Some(user_id) => (Stage::Pin { user_id }, "vm_enter_pin"),
            None => (Stage::Mailbox, "vm_enter_mailbox"),
        };
        self.sessions.insert(id.clone(), self.session(stage, None));
        self.prompt(legs, id, prompt, true);
    }

    /// The shell checked the PIN keyed for the mailbox: None = wrong (or no such
    /// mailbox); else the mailbox's user and its new messages, oldest first.
    pub fn login_result(&mut self, legs: &mut Legs, id: &LegId, result: Option<(UserId, Vec<MessageRef>)>) {
        let Some(s) = self.sessions.get_mut(id) else { return };
        let Stage::Checking { user_id: asked } = s.stage else { return };
        let Some((user_id, messages)) = result else {
            info!(leg = %id, user = asked, "voicemail: wrong PIN");
            s.stage = Stage::Pin { user_id: asked };
            return self.wrong(legs, id);
        };
        info!(leg = %id, user = user_id, new = messages.len(), "voicemail: mailbox opened");
        let n = messages.len();
        s.stage = Stage::Listening { user_id, queue: messages.into(), current: None };
        let p = &self.cfg.prompts;
        let parts = if n == 0 {
            vec![p.part("vm_no_messages")]
        } else {
            let mut v = vec![p.part("vm_you_have")];
            v.extend(n.to_string().chars().map(|d| p.part(&d.to_string())));
            v.push(p.part(if n == 1 { "vm_new_message" } else { "vm_new_messages" }));
            v
        };
        self.play(legs, id, parts, true);
    }

    pub fn on_leg_event(&mut self, now: Instant, legs: &mut Legs, ev: LegEvent) {
        match ev {
            LegEvent::Dtmf { leg, digit, .. } => self.on_digit(now, legs, &leg, digit),
            LegEvent::Timer { leg, tag } => self.on_timer(now, legs, &leg, tag),
            LegEvent::PromptEnded { leg, prompt, end } => self.on_prompt_ended(now, legs, &leg, prompt, end),
            LegEvent::Ended { leg, .. } => {
                if let Some(s) = self.sessions.remove(&leg) {
                    self.finish(legs, &leg, s);
                }
            }
            ev => super::default_handling(now, legs, ev),
        }
    }

    fn on_digit(&mut self, now: Instant, legs: &mut Legs, id: &LegId, digit: char) {
        let Some(s) = self.sessions.get_mut(id) else { return };
        match s.stage {
            // `#` ends a message, as on most voicemail systems.
            Stage::Recording { .. } if digit == '#' => return self.end_recording(legs, id),
            Stage::Listening { .. } if digit == '#' => {
                // Skip to the next message (the current one counts as heard).
                if let Some(p) = s.prompt {
                    legs.stop_prompt(id, Some(p));
                }
                return;
            }
            Stage::Mailbox | Stage::Pin { .. } => {}
            _ => return,
        }
        match s.digits.push(now, digit) {
            Entry::Ignored => {}
            Entry::Collecting { deadline } => {
                if let Some(p) = s.prompt.take() {
                    legs.stop_prompt(id, Some(p));
                }
                s.timer += 1;
                legs.set_timer(id, deadline, s.timer);
            }
            Entry::Done(entry) => {
                if let Some(p) = s.prompt.take() {
                    legs.stop_prompt(id, Some(p));
                }
                self.submit(legs, id, entry);
            }
        }
    }

    fn on_timer(&mut self, now: Instant, legs: &mut Legs, id: &LegId, tag: u32) {
        let Some(s) = self.sessions.get_mut(id) else { return };
        if tag != s.timer {
            return;
        }
        match s.stage {
            Stage::Recording { .. } => {
                info!(leg = %id, "voicemail: the message reached its maximum length");
                self.end_recording(legs, id)
            }
            Stage::Mailbox | Stage::Pin { .. } => {
                if let Some(entry) = s.digits.timeout() {
                    return self.submit(legs, id, entry);
                }
                s.attempts += 1;
                if s.attempts >= self.cfg.voicemail.max_attempts {
                    return self.goodbye(legs, id, "vm_goodbye");
                }
                let name = if matches!(s.stage, Stage::Mailbox) { "vm_enter_mailbox" } else { "vm_enter_pin" };
                self.prompt(legs, id, name, true);
            }
            _ => {}
        }
        let _ = now;
    }

    fn on_prompt_ended(&mut self, now: Instant, legs: &mut Legs, id: &LegId, prompt: PromptId, end: PromptEnd) {
        let p = &self.cfg.prompts;
        let Some(s) = self.sessions.get_mut(id) else { return };
        if s.prompt != Some(prompt) {
            return;
        }
        s.prompt = None;
        // What comes next, decided with the session borrowed, done after.
        let next = match &mut s.stage {
            Stage::Greeting { own: true } if end == PromptEnd::Failed => {
                // No greeting of the user's own: the default one.
                s.stage = Stage::Greeting { own: false };
                Some((vec![p.part("vm_greeting")], false))
            }
            Stage::Greeting { .. } => {
                s.stage = Stage::Beep;
                Some((vec![p.part("beep")], false))
            }
            Stage::Beep => return self.start_recording(now, legs, id),
            Stage::Listening { user_id, queue, current } => {
                if let Some(done) = current.take() {
                    // Heard (or skipped with #): it is read now.
                    legs.public.push_back(EngineEvent::VoicemailPlayed { user_id: *user_id, id: done });
                }
                match queue.pop_front() {
                    Some((msg, file)) => {
                        *current = Some(msg);
                        Some((vec![p.part("vm_message"), PromptPart::File(self.cfg.data_dir.join(file))], true))
                    }
                    None => return self.goodbye(legs, id, "vm_goodbye"),
                }
            }
            Stage::Goodbye => {
                self.sessions.remove(id);
                let _ = legs.hangup(now, id);
                return;
            }
            Stage::Mailbox | Stage::Pin { .. } => {
                // Wait for the first digit this long before asking again.
                if s.digits.is_empty() {
                    s.timer += 1;
                    legs.set_timer(id, now + self.cfg.ivr.no_input_timeout, s.timer);
                }
                None
            }
            Stage::Recording { .. } | Stage::Checking { .. } => None,
        };
        if let Some((parts, barge_in)) = next {
            self.play(legs, id, parts, barge_in);
        }
    }

    /// A complete entry at the access number.
    fn submit(&mut self, legs: &mut Legs, id: &LegId, entry: String) {
        let Some(domain) = legs.get(id).map(|l| l.domain.clone()) else { return };
        let Some(s) = self.sessions.get_mut(id) else { return };
        match s.stage {
            Stage::Mailbox => {
                // Looked up when the PIN is checked: an unknown extension gets the same
                // "wrong" as a wrong PIN, so mailboxes cannot be probed.
                s.stage = Stage::Pin { user_id: 0 };
                s.mailbox = Some(Mailbox { user_id: 0, owner: entry, caller: Party::default(), call: None });
                s.attempts = 0;
                self.prompt(legs, id, "vm_enter_pin", true);
            }
            Stage::Pin { user_id } => {
                s.stage = Stage::Checking { user_id };
                let ext = s.mailbox.as_ref().map(|m| m.owner.clone());
                legs.public.push_back(EngineEvent::VoicemailLogin { leg_id: id.clone(), user_id, ext, domain, pin: Pin(entry) });
            }
            _ => {}
        }
    }

    fn wrong(&mut self, legs: &mut Legs, id: &LegId) {
        let Some(s) = self.sessions.get_mut(id) else { return };
        s.digits.clear();
        s.attempts += 1;
        if s.attempts >= self.cfg.voicemail.max_attempts {
            return self.goodbye(legs, id, "wrong_pin_bye");
        }
        self.prompt(legs, id, "wrong_pin", true);
    }

    fn goodbye(&mut self, legs: &mut Legs, id: &LegId, name: &str) {
        let Some(s) = self.sessions.get_mut(id) else { return };
        s.stage = Stage::Goodbye;
        self.prompt(legs, id, name, false);
    }

    fn start_recording(&mut self, now: Instant, legs: &mut Legs, id: &LegId) {
        let Some(via) = legs.media_of(id) else { return };
        let Some(s) = self.sessions.get_mut(id) else { return };
        let Some(mb) = &s.mailbox else { return };
        self.next_room += 1;
        let room = media::RoomId(self.next_room);
        let started_ms = epoch_ms();
        let file = format!("voicemail/{}/{}-{}.wav", mb.user_id, started_ms, id.0.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect::<String>());
        let tap = match media::recorder::start(&self.cfg.data_dir.join(&file)) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(leg = %id, error = %e, "voicemail: cannot record");
                return self.goodbye(legs, id, "vm_goodbye");
            }
        };
        legs.attach(id, Attachment::Room(room));
        legs.media.tap_room(via, room, Some(tap));
        info!(leg = %id, %file, "voicemail: recording");
        s.stage = Stage::Recording { via, room, file, started_ms };
        s.timer += 1;
        legs.set_timer(id, now + self.cfg.voicemail.max_message, s.timer);
    }

    /// `#` or the maximum length: the message is complete; goodbye and BYE.
    fn end_recording(&mut self, legs: &mut Legs, id: &LegId) {
        let Some(s) = self.sessions.get_mut(id) else { return };
        let stage = std::mem::replace(&mut s.stage, Stage::Goodbye);
        let mailbox = s.mailbox.clone();
        self.report(legs, id, stage, mailbox);
        legs.attach(id, Attachment::None);
        self.goodbye(legs, id, "vm_goodbye");
    }

    /// The leg is gone: a recording under way is complete.
    fn finish(&mut self, legs: &mut Legs, id: &LegId, s: Session) {
        self.report(legs, id, s.stage, s.mailbox);
    }

    fn report(&mut self, legs: &mut Legs, id: &LegId, stage: Stage, mailbox: Option<Mailbox>) {
        let (Stage::Recording { via, room, file, started_ms }, Some(mb)) = (stage, mailbox) else { return };
        // Dropping the tap closes the file (the writer thread finishes its header).
        legs.media.tap_room(via, room, None);
        info!(leg = %id, %file, user = mb.user_id, "voicemail: message recorded");
        legs.public.push_back(EngineEvent::VoicemailRecorded { user_id: mb.user_id, to: mb.owner, caller: mb.caller, call_id: mb.call, file, started_ms });
    }

    fn prompt(&mut self, legs: &mut Legs, id: &LegId, name: &str, barge_in: bool) {
        let part = self.cfg.prompts.part(name);
        self.play(legs, id, vec![part], barge_in);
    }

    fn play(&mut self, legs: &mut Legs, id: &LegId, parts: Vec<PromptPart>, barge_in: bool) {
        let Some(s) = self.sessions.get_mut(id) else { return };
        let mut spec = PromptSpec::once(parts);
        spec.barge_in = barge_in;
        s.prompt = legs.play(id, spec);
        // A new prompt: no entry timer runs until it has ended.
        s.timer += 1;
    }
}

/// The body of an RFC 3842 `application/simple-message-summary`: whether messages wait
/// and the voice-message counts (`new/old`, and no urgent ones).
pub fn message_summary(account: &str, new: u32, old: u32) -> String {
    let waiting = if new > 0 { "yes" } else { "no" };
    format!("Messages-Waiting: {waiting}\r\nMessage-Account: {account}\r\nVoice-Message: {new}/{old} (0/0)\r\n")
}

/// An unsolicited (out-of-dialog) MWI NOTIFY to one registered contact, as PBXes send
/// them: From and To are the mailbox's account, a fresh Call-ID, `Event:
/// message-summary` and `Subscription-State: active`.
pub(crate) fn mwi_notify(legs: &Legs, account: &str, contact: sip::Uri, transport: sip::Transport, new: u32, old: u32) -> sip::Request {
    use sip::dialog::random_token;
    let account_uri = sip::parse::parse_uri(account).unwrap_or_else(|_| contact.clone());
    let host = match legs.cfg.sip_addr.ip() {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    let mut ruri = contact;
    ruri.headers.clear();
    let mut headers = sip::Headers {
        via: vec![legs.via(transport)],
        from: sip::NameAddr::new(account_uri.clone()).with_tag(&random_token(10)),
        to: sip::NameAddr::new(account_uri),
        call_id: format!("{}@{host}", random_token(20)),
        cseq: sip::CSeq { seq: 1, method: sip::Method::Notify },
        max_forwards: Some(70),
        contact: vec![legs.contact(transport)],
        route: Vec::new(),
        record_route: Vec::new(),
        content_type: Some("application/simple-message-summary".into()),
        extra: Vec::new(),
    };
    headers.push("Event", "message-summary");
    headers.push("Subscription-State", "active");
    headers.push("User-Agent", legs.cfg.user_agent.clone());
    sip::Request { method: sip::Method::Notify, uri: ruri, headers, body: message_summary(account, new, old).into_bytes() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_summary_says_waiting_and_the_counts() {
        assert_eq!(message_summary("sip:3045@alpha.test", 2, 1), "Messages-Waiting: yes\r\nMessage-Account: sip:3045@alpha.test\r\nVoice-Message: 2/1 (0/0)\r\n");
        assert!(message_summary("sip:3045@alpha.test", 0, 3).starts_with("Messages-Waiting: no\r\n"));
    }
}
