//! The transaction layer: every transaction, their indexes, one deadline queue.
//!
//! Hot path, per message: one `HashMap` lookup by top Via branch (no allocation for
//! RFC 3261 branches), a check of sent-by and method on the few candidates, then the
//! machine. Per timer: a `BTreeSet` of `(deadline, tx, timer)` mirrors every armed
//! entry of every transaction's [`TimerTable`], so `poll_timeout` is the first element
//! and `handle_timeout` touches only due timers, O(log n) each. After each call into a
//! machine the layer diffs its timer table (13 words) and updates the set.
//!
//! Cost, measured with callgrind on `throughput_call_setups` (tests/transaction.rs):
//! a UAS call (INVITE in, 100/180/200 out, ACK in, BYE in, 200 out, then expiry of
//! both transactions) is about 70k instructions in the layer, most of it printing
//! responses and freeing messages; matching and timers are a small part.
//!
//! Transactions the layer creates for itself (the server transaction answering a
//! CANCEL, or a 482 to a merged request) are `internal`: the TU never hears of them.

use super::client_invite::{self, cancel_for, ClientInvite};
use super::client_non_invite::{self, ClientNonInvite};
use super::key::{ack_key, merge_key, server_key, tx_method, SentBy};
use super::route::{response_peer, stamp_via};
use super::server_invite::{self, ServerInvite};
use super::server_non_invite::{self, ServerNonInvite};
use super::timer::{Timer, TimerTable};
use super::{new_tag, Io, Output, TimerConfig, TxEvent, TxId};
use crate::message::{Message, Method, Peer, Request, Response, Via};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

/// All transactions of one SIP endpoint. See the module docs of `transaction`.
pub struct TransactionLayer {
    cfg: TimerConfig,
    next_id: u64,
    txs: HashMap<TxId, Entry, BuildHasherDefault<IdHasher>>,
    /// Client transactions by top Via branch. CANCELs apart: they share the INVITE's.
    client: HashMap<String, TxId>,
    client_cancel: HashMap<String, TxId>,
    /// Server transactions by `key::server_key`; candidates differ in method/sent-by.
    server: HashMap<String, Vec<TxId>>,
    /// §8.2.2.2: out-of-dialog server transactions by (From tag, Call-ID, CSeq).
    merge: HashMap<String, TxId>,
    /// Server INVITEs that sent a 2xx, by `key::ack_key` of that 2xx.
    acks: HashMap<String, TxId>,
    deadlines: BTreeSet<(Instant, TxId, Timer)>,
    out: VecDeque<Output>,
}

struct Entry {
    tx: Transaction,
    internal: bool,
    index: Index,
}

#[allow(clippy::enum_variant_names)] // the RFC's names
enum Transaction {
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
}

/// Where an entry is indexed, so removal can undo it.
enum Index {
    Client {
        branch: Option<String>,
        cancel: bool,
    },
    Server {
        key: String,
        method: Method,
        sent_by: SentBy,
        merge: Option<String>,
        acks: Vec<String>,
    },
}

impl Transaction {
    fn timers(&self) -> &TimerTable {
        match self {
            Transaction::ClientInvite(t) => &t.timers,
            Transaction::ClientNonInvite(t) => &t.timers,
            Transaction::ServerInvite(t) => &t.timers,
            Transaction::ServerNonInvite(t) => &t.timers,
        }
    }

    fn timers_mut(&mut self) -> &mut TimerTable {
        match self {
            Transaction::ClientInvite(t) => &mut t.timers,
            Transaction::ClientNonInvite(t) => &mut t.timers,
            Transaction::ServerInvite(t) => &mut t.timers,
            Transaction::ServerNonInvite(t) => &mut t.timers,
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Transaction::ClientInvite(t) => t.state == client_invite::State::Terminated,
            Transaction::ClientNonInvite(t) => t.state == client_non_invite::State::Terminated,
            Transaction::ServerInvite(t) => t.state == server_invite::State::Terminated,
            Transaction::ServerNonInvite(t) => t.state == server_non_invite::State::Terminated,
        }
    }

    fn on_timer(&mut self, timer: Timer, io: &mut Io) {
        match self {
            Transaction::ClientInvite(t) => t.on_timer(timer, io),
            Transaction::ClientNonInvite(t) => t.on_timer(timer, io),
            Transaction::ServerInvite(t) => t.on_timer(timer, io),
            Transaction::ServerNonInvite(t) => t.on_timer(timer),
        }
    }

    /// The request of a server transaction came again.
    fn on_retransmit(&mut self, io: &mut Io) {
        match self {
            Transaction::ServerInvite(t) => t.on_retransmit(io),
            Transaction::ServerNonInvite(t) => t.on_retransmit(io),
            _ => {}
        }
    }

    fn send_response(&mut self, resp: Response, io: &mut Io) -> bool {
        match self {
            Transaction::ServerInvite(t) => t.send_response(resp, io),
            Transaction::ServerNonInvite(t) => t.send_response(resp, io),
            _ => false,
        }
    }
}

impl TransactionLayer {
    /// T1 and T2 are raised to at least 1 ms so that retransmission timers advance.
    pub fn new(cfg: TimerConfig) -> Self {
        let t1 = cfg.t1.max(Duration::from_millis(1));
        let cfg = TimerConfig {
            t1,
            t2: cfg.t2.max(t1),
            t4: cfg.t4,
        };
        TransactionLayer {
            cfg,
            next_id: 0,
            txs: HashMap::default(),
            client: HashMap::new(),
            client_cancel: HashMap::new(),
            server: HashMap::new(),
            merge: HashMap::new(),
            acks: HashMap::new(),
            deadlines: BTreeSet::new(),
            out: VecDeque::new(),
        }
    }

    /// A parsed message arrived from the network.
    pub fn handle_message(&mut self, now: Instant, msg: Message, from: Peer) {
        match msg {
            Message::Request(req) => self.on_request(now, req, from),
            Message::Response(resp) => self.on_response(now, resp),
        }
    }

    /// Fire every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id, timer)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            // Disarm first, so the machine may re-arm the same timer.
            if let Some(entry) = self.txs.get_mut(&id) {
                entry.tx.timers_mut().stop(timer);
            }
            self.drive(now, id, |tx, io| tx.on_timer(timer, io));
        }
    }

    /// Earliest instant at which `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _, _)| at)
    }

    /// Next thing to do: bytes to send, or an event for the TU.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Starts a client transaction (any method but ACK; an ACK is sent statelessly and
    /// its id terminated at once). The request goes out as is: the caller has put our
    /// Via with a z9hG4bK branch on top. Without a branch no response can match it.
    pub fn send_request(&mut self, now: Instant, req: Request, to: Peer) -> TxId {
        let id = self.alloc_id();
        if req.method == Method::Ack {
            self.send_stateless(&Message::Request(req), to);
            self.out
                .push_back(Output::Event(TxEvent::Terminated { tx: id }));
            return id;
        }
        let branch = req.top_via().and_then(Via::branch).map(str::to_owned);
        let cancel = req.method == Method::Cancel;
        let mut io = Io {
            now,
            cfg: &self.cfg,
            out: &mut self.out,
        };
        let tx = if req.method == Method::Invite {
            Transaction::ClientInvite(ClientInvite::start(id, req, to, &mut io))
        } else {
            let mut t = ClientNonInvite::pending(id, &req, to);
            t.start(&mut io);
            Transaction::ClientNonInvite(t)
        };
        self.insert(
            id,
            Entry {
                tx,
                internal: false,
                index: Index::Client { branch, cancel },
            },
        );
        id
    }

    /// Answers a server transaction. Responses the state forbids (a second final, any
    /// response on an unknown or client transaction) are dropped. A 2xx to INVITE
    /// enters Accepted: retransmitted on UDP until its ACK arrives.
    pub fn send_response(&mut self, now: Instant, tx: TxId, resp: Response) {
        let is_invite = matches!(
            self.txs.get(&tx),
            Some(Entry {
                tx: Transaction::ServerInvite(_),
                ..
            })
        );
        let ack = (is_invite && resp.is_success()).then(|| ack_key(&resp.headers));
        let sent = self
            .drive(now, tx, |t, io| t.send_response(resp, io))
            .unwrap_or(false);
        if let (true, Some(k)) = (sent, ack) {
            if let Some(Entry {
                index: Index::Server { acks, .. },
                ..
            }) = self.txs.get_mut(&tx)
            {
                acks.push(k.clone());
                self.acks.insert(k, tx);
            }
        }
    }

    /// Cancels a pending client INVITE (§9.1) with a CANCEL client transaction, sent at
    /// once if a provisional has arrived, else as soon as the first one does (if the
    /// INVITE ends first, the CANCEL is dropped unsent and reported Terminated).
    /// Returns the CANCEL's id (the same one on repeated calls), or None if the INVITE
    /// is unknown or already has a final response.
    pub fn cancel(&mut self, now: Instant, invite_tx: TxId) -> Option<TxId> {
        let Some(Entry {
            tx: Transaction::ClientInvite(inv),
            ..
        }) = self.txs.get(&invite_tx)
        else {
            return None;
        };
        let proceeding = match inv.state {
            client_invite::State::Calling => false,
            client_invite::State::Proceeding => true,
            _ => return None,
        };
        if let Some(c) = inv.cancel {
            return Some(c);
        }
        let req = cancel_for(&inv.request);
        let to = inv.to;
        let id = self.alloc_id();
        let branch = req.top_via().and_then(Via::branch).map(str::to_owned);
        let tx = Transaction::ClientNonInvite(ClientNonInvite::pending(id, &req, to));
        self.insert(
            id,
            Entry {
                tx,
                internal: false,
                index: Index::Client {
                    branch,
                    cancel: true,
                },
            },
        );
        if let Some(Entry {
            tx: Transaction::ClientInvite(inv),
            ..
        }) = self.txs.get_mut(&invite_tx)
        {
            inv.cancel = Some(id);
        }
        if proceeding {
            self.start_cancel(now, id);
        }
        Some(id)
    }

    /// Sends a message outside any transaction (ACK for 2xx, stateless replies).
    pub fn send_stateless(&mut self, msg: &Message, to: Peer) {
        self.out.push_back(Output::Transmit {
            to,
            data: msg.to_bytes().into(),
        });
    }

    /// Live transactions, including the layer's own and not-yet-sent CANCELs.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    // --- responses (client side) ---

    fn on_response(&mut self, now: Instant, resp: Response) {
        let Some(branch) = resp.headers.via.first().and_then(Via::branch) else {
            return;
        };
        let method = &resp.headers.cseq.method;
        let map = if *method == Method::Cancel {
            &self.client_cancel
        } else {
            &self.client
        };
        let Some(&id) = map.get(branch) else { return };
        match self.txs.get(&id).map(|e| &e.tx) {
            Some(Transaction::ClientInvite(_)) if *method == Method::Invite => {
                self.drive(now, id, |tx, io| {
                    if let Transaction::ClientInvite(t) = tx {
                        t.on_response(resp, io)
                    }
                });
                self.settle_cancel(now, id);
            }
            Some(Transaction::ClientNonInvite(t)) if t.method == *method => {
                self.drive(now, id, |tx, io| {
                    if let Transaction::ClientNonInvite(t) = tx {
                        t.on_response(resp, io)
                    }
                });
            }
            _ => {}
        }
    }

    /// After a response to a client INVITE: send its waiting CANCEL on the first 1xx,
    /// drop it unsent on a final.
    fn settle_cancel(&mut self, now: Instant, invite: TxId) {
        let Some(Entry {
            tx: Transaction::ClientInvite(inv),
            ..
        }) = self.txs.get(&invite)
        else {
            return;
        };
        let Some(cancel) = inv.cancel else { return };
        match inv.state {
            client_invite::State::Calling => {}
            client_invite::State::Proceeding => self.start_cancel(now, cancel),
            _ => self.abandon_cancel(cancel),
        }
    }

    fn start_cancel(&mut self, now: Instant, cancel: TxId) {
        self.drive(now, cancel, |tx, io| {
            if let Transaction::ClientNonInvite(t) = tx {
                t.start(io);
            }
        });
    }

    fn abandon_cancel(&mut self, cancel: TxId) {
        if let Some(Entry {
            tx: Transaction::ClientNonInvite(t),
            ..
        }) = self.txs.get(&cancel)
        {
            if t.state == client_non_invite::State::Pending {
                self.remove(cancel);
            }
        }
    }

    // --- requests (server side) ---

    fn on_request(&mut self, now: Instant, mut req: Request, from: Peer) {
        // Without a Via there is nowhere to answer: drop.
        let Some(via) = req.headers.via.first_mut() else {
            return;
        };
        stamp_via(via, from);
        let resp_to = response_peer(via, from);
        match req.method {
            Method::Ack => self.on_ack(now, req, from),
            Method::Cancel => self.on_cancel(now, req, resp_to),
            _ => self.on_other(now, req, from, resp_to),
        }
    }

    /// The server transaction `req` belongs to: same key, same sent-by, and the
    /// transaction's method is `method`.
    fn find_server(&self, req: &Request, key: &str, method: &Method) -> Option<TxId> {
        let via = req.top_via()?;
        self.server.get(key)?.iter().copied().find(|id| {
            matches!(self.txs.get(id), Some(Entry { index: Index::Server { method: m, sent_by, .. }, .. })
                if m == method && sent_by.matches(via))
        })
    }

    /// The peer has shown it got our 2xx to INVITE `tx` without ACKing it yet (it sent
    /// a BYE or another request in the dialog): stop retransmitting the 2xx, as an ACK
    /// would (RFC 3261 §13.3.1.4 only needs the 2xx to reach the peer). Timer L still
    /// runs; since the 2xx counts as acknowledged, no AckTimeout follows.
    pub fn stop_2xx_retransmission(&mut self, now: Instant, tx: TxId) {
        self.drive(now, tx, |tx, _| {
            if let Transaction::ServerInvite(t) = tx {
                if t.state == server_invite::State::Accepted {
                    t.on_2xx_ack()
                }
            }
        });
    }

    /// ACK: for a 300-699 it matches the INVITE by branch and is absorbed; for a 2xx it
    /// has its own branch, matches by dialog ids, stops retransmission and goes up.
    fn on_ack(&mut self, now: Instant, req: Request, from: Peer) {
        let by_branch = self.find_server(&req, &server_key(&req), &Method::Invite);
        if let Some(id) = by_branch {
            let accepted = matches!(self.txs.get(&id),
                Some(Entry { tx: Transaction::ServerInvite(t), .. }) if t.state == server_invite::State::Accepted);
            if !accepted {
                self.drive(now, id, |tx, io| {
                    if let Transaction::ServerInvite(t) = tx {
                        t.on_ack(io)
                    }
                });
                return;
            }
        }
        let tx = by_branch.or_else(|| self.acks.get(&ack_key(&req.headers)).copied());
        if let Some(id) = tx {
            self.drive(now, id, |tx, _| {
                if let Transaction::ServerInvite(t) = tx {
                    t.on_2xx_ack()
                }
            });
        }
        self.out
            .push_back(Output::Event(TxEvent::Ack { tx, req, from }));
    }

    /// CANCEL (§9.2): answered by the layer through an internal server transaction.
    /// 200 + 487 to the INVITE + Cancelled if the INVITE is pending; 200 alone if it
    /// already has a final; 481 if there is no such INVITE.
    fn on_cancel(&mut self, now: Instant, req: Request, resp_to: Peer) {
        let key = server_key(&req).into_owned();
        if let Some(id) = self.find_server(&req, &key, &Method::Cancel) {
            self.drive(now, id, |tx, io| tx.on_retransmit(io));
            return;
        }
        // (INVITE id, still Proceeding, To tag for our answers)
        let target = self
            .find_server(&req, &key, &Method::Invite)
            .and_then(|id| match self.txs.get(&id) {
                Some(Entry {
                    tx: Transaction::ServerInvite(t),
                    ..
                }) => Some((id, t.state == server_invite::State::Proceeding, t.tag())),
                _ => None,
            });
        let (status, tag) = match &target {
            Some((_, _, tag)) => (200, tag.clone()),
            None => (481, new_tag()),
        };
        let resp = req.response(status, Some(&tag));
        let Some(sent_by) = req.top_via().map(SentBy::of) else {
            return;
        };
        let id = self.alloc_id();
        let index = Index::Server {
            key,
            method: Method::Cancel,
            sent_by,
            merge: None,
            acks: Vec::new(),
        };
        let tx = Transaction::ServerNonInvite(ServerNonInvite::new(resp_to));
        self.insert(
            id,
            Entry {
                tx,
                internal: true,
                index,
            },
        );
        self.drive(now, id, |tx, io| tx.send_response(resp, io));
        if let Some((invite_tx, true, _)) = target {
            self.drive(now, invite_tx, |tx, io| {
                if let Transaction::ServerInvite(t) = tx {
                    t.cancel(&tag, io)
                }
            });
            self.out.push_back(Output::Event(TxEvent::Cancelled {
                invite_tx,
                cancel: req,
            }));
        }
    }

    /// Any other request: a retransmission, a merged request (482), or a new server
    /// transaction for the TU.
    fn on_other(&mut self, now: Instant, req: Request, from: Peer, resp_to: Peer) {
        let retransmitted = self.find_server(&req, &server_key(&req), tx_method(&req.method));
        if let Some(id) = retransmitted {
            self.drive(now, id, |tx, io| tx.on_retransmit(io));
            return;
        }
        let Some(sent_by) = req.top_via().map(SentBy::of) else {
            return;
        };
        let key = server_key(&req).into_owned();
        let merge = merge_key(&req);
        let merged = merge.as_ref().is_some_and(|m| self.merge.contains_key(m));
        let id = self.alloc_id();
        let is_invite = req.method == Method::Invite;
        let method = req.method.clone();

        if merged {
            let resp = req.response(482, Some(&new_tag()));
            let mut io = Io {
                now,
                cfg: &self.cfg,
                out: &mut self.out,
            };
            let tx = if is_invite {
                Transaction::ServerInvite(ServerInvite::new(id, req, resp_to, false, &mut io))
            } else {
                Transaction::ServerNonInvite(ServerNonInvite::new(resp_to))
            };
            let index = Index::Server {
                key,
                method,
                sent_by,
                merge: None,
                acks: Vec::new(),
            };
            self.insert(
                id,
                Entry {
                    tx,
                    internal: true,
                    index,
                },
            );
            self.drive(now, id, |tx, io| tx.send_response(resp, io));
            return;
        }

        let mut io = Io {
            now,
            cfg: &self.cfg,
            out: &mut self.out,
        };
        let tx = if is_invite {
            Transaction::ServerInvite(ServerInvite::new(id, req.clone(), resp_to, true, &mut io))
        } else {
            Transaction::ServerNonInvite(ServerNonInvite::new(resp_to))
        };
        let index = Index::Server {
            key,
            method,
            sent_by,
            merge,
            acks: Vec::new(),
        };
        self.insert(
            id,
            Entry {
                tx,
                internal: false,
                index,
            },
        );
        self.out
            .push_back(Output::Event(TxEvent::Request { tx: id, req, from }));
    }

    // --- bookkeeping ---

    fn alloc_id(&mut self) -> TxId {
        self.next_id += 1;
        TxId(self.next_id)
    }

    /// Registers a new transaction: indexes and deadlines.
    fn insert(&mut self, id: TxId, entry: Entry) {
        sync_deadlines(
            &mut self.deadlines,
            id,
            &TimerTable::default(),
            entry.tx.timers(),
        );
        match &entry.index {
            Index::Client {
                branch: Some(b),
                cancel,
            } => {
                let map = if *cancel {
                    &mut self.client_cancel
                } else {
                    &mut self.client
                };
                map.insert(b.clone(), id);
            }
            Index::Client { branch: None, .. } => {}
            Index::Server { key, merge, .. } => {
                self.server.entry(key.clone()).or_default().push(id);
                if let Some(m) = merge {
                    self.merge.insert(m.clone(), id);
                }
            }
        }
        self.txs.insert(id, entry);
    }

    /// Runs `f` on transaction `id`, then mirrors its timer changes into the deadline
    /// queue and removes it if it terminated. None if `id` is unknown.
    fn drive<R>(
        &mut self,
        now: Instant,
        id: TxId,
        f: impl FnOnce(&mut Transaction, &mut Io) -> R,
    ) -> Option<R> {
        let entry = self.txs.get_mut(&id)?;
        let before = *entry.tx.timers();
        let mut io = Io {
            now,
            cfg: &self.cfg,
            out: &mut self.out,
        };
        let r = f(&mut entry.tx, &mut io);
        sync_deadlines(&mut self.deadlines, id, &before, entry.tx.timers());
        if entry.tx.is_terminated() {
            self.remove(id);
        }
        Some(r)
    }

    /// Forgets a transaction: deadlines, indexes; reports Terminated unless internal.
    fn remove(&mut self, id: TxId) {
        let Some(entry) = self.txs.remove(&id) else {
            return;
        };
        for (timer, at) in entry.tx.timers().armed() {
            self.deadlines.remove(&(at, id, timer));
        }
        match entry.index {
            Index::Client {
                branch: Some(b),
                cancel,
            } => {
                let map = if cancel {
                    &mut self.client_cancel
                } else {
                    &mut self.client
                };
                if map.get(&b) == Some(&id) {
                    map.remove(&b);
                }
            }
            Index::Client { branch: None, .. } => {}
            Index::Server {
                key, merge, acks, ..
            } => {
                if let Some(ids) = self.server.get_mut(&key) {
                    ids.retain(|&x| x != id);
                    if ids.is_empty() {
                        self.server.remove(&key);
                    }
                }
                if let Some(m) = merge {
                    if self.merge.get(&m) == Some(&id) {
                        self.merge.remove(&m);
                    }
                }
                for k in acks {
                    if self.acks.get(&k) == Some(&id) {
                        self.acks.remove(&k);
                    }
                }
            }
        }
        if !entry.internal {
            self.out
                .push_back(Output::Event(TxEvent::Terminated { tx: id }));
        }
        if let Transaction::ClientInvite(inv) = &entry.tx {
            if let Some(cancel) = inv.cancel {
                self.abandon_cancel(cancel);
            }
        }
    }
}

/// Mirrors the changes between two timer tables of `id` into the deadline set.
fn sync_deadlines(
    set: &mut BTreeSet<(Instant, TxId, Timer)>,
    id: TxId,
    before: &TimerTable,
    after: &TimerTable,
) {
    for timer in Timer::VALUES {
        let (b, a) = (before.get(timer), after.get(timer));
        if b != a {
            if let Some(at) = b {
                set.remove(&(at, id, timer));
            }
            if let Some(at) = a {
                set.insert((at, id, timer));
            }
        }
    }
}

/// Hasher for the `TxId` map. Ids are sequential u64s from our own counter, so there is
/// nothing to defend against; one multiply (FxHash's) replaces SipHash.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
