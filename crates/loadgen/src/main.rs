//! `sb-load`: a SIP + G.711 RTP load generator for Switchboard (or any SIP server).
//!
//! It places N real calls over UDP at a set rate, streams 20 ms PCMU packets on every
//! call, and measures over a fixed window: packets sent and received, loss per stream
//! (from RTP sequence numbers), inter-packet arrival gaps (kernel timestamps), and
//! the CPU time of the server (`--server-pid`) and of itself. Then it hangs up.
//!
//! Why our own tool: SIPp's `rtp_stream` tops out near 1,000 RTP calls per instance on
//! the benchmark machine and sends every call from one port, while the server latches
//! media per leg.
//!
//! Phases: ramp (calls set up at `--rate`, media starts per call as soon as its 200
//! arrives) → warmup → measure (`--duration`) → stop media → BYE at `--rate`. The
//! main thread runs SIP; `--threads` RTP threads run [`media::Worker`].
//!
//! Two-party mode (`--answer-on`): sb-load is also the callees, a UAS the server
//! uses as its gateway ([`uas`]); call i's callee answers with `--callee-codec` and
//! streams back, so each call is a bridged two-leg call with RTP both ways. Callee
//! participants are numbered after the callers (global index n + i) and measured as
//! group 1; the summary adds calls per server core.
//!
//! Output: progress lines, a human summary, then `RESULT {json}` (one line).

mod args;
mod endpoint;
mod media;
mod stats;
mod sys;
mod ua;
mod uas;

use media::{Participant, Shared, Tables, Worker, PHASE_MEASURE, PHASE_STOP};
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let a = match args::parse() {
        Ok(a) => a,
        Err(e) => {
            if e.is_empty() {
                println!("{}", args::USAGE);
                std::process::exit(0);
            }
            eprintln!("sb-load: {e}\n\n{}", args::USAGE);
            std::process::exit(2);
        }
    };
    if let Err(e) = run(a) {
        eprintln!("sb-load: {e}");
        std::process::exit(1);
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn run(a: args::Args) -> Result<(), String> {
    let n = a.calls();
    let two_party = a.answer_on.is_some();
    // Participants: the callers, then (two-party) one callee per call.
    let total = if two_party { 2 * n } else { n };
    let limit = sys::raise_nofile(total as u64 + 256);
    if limit < total as u64 + 64 {
        return Err(format!(
            "open-file limit {limit} is too low for {total} participants (ulimit -n)"
        ));
    }
    let mut mode = a.send;
    if mode == args::SendMode::Raw && sys::raw_socket().is_err() {
        eprintln!("sb-load: no raw socket (needs CAP_NET_RAW); falling back to --send socket");
        mode = args::SendMode::Socket;
    }

    // Participants: a socket each on the next free even port.
    let callee_codec = uas::codec_named(&a.callee_codec).expect("checked by args");
    let tables = if two_party {
        Tables::new()
            .with_callee(callee_codec.1, a.callee_tone)
            .ok_or(format!("codec {} is not in this build", a.callee_codec))?
    } else {
        Tables::new()
    };
    let tables = Arc::new(tables);
    let shared = Arc::new(Shared::new(total, a.threads));
    let mut uas = match a.answer_on {
        Some(at) => Some(
            uas::Uas::new(at, callee_codec.0.clone(), a.t1.as_nanos() as u64)
                .map_err(|e| format!("callee SIP socket on {at}: {e}"))?,
        ),
        None => None,
    };
    let uas_fd = uas.as_ref().map(|u| u.fd());
    let mut ua = ua::Ua::new(
        SocketAddrV4::new(a.local_ip, a.sip_port),
        a.server,
        a.t1.as_nanos() as u64,
    )
    .map_err(|e| format!("SIP socket on {}: {e}", a.local_ip))?;
    let mut per_thread: Vec<Vec<Participant>> = (0..a.threads).map(|_| Vec::new()).collect();
    let mut port = a.rtp_base as u32 & !1;
    for i in 0..total {
        let sock = loop {
            if port > 65534 {
                return Err(format!("ran out of local ports after {i} participants"));
            }
            let addr = SocketAddrV4::new(a.local_ip, port as u16);
            port += 2;
            match sys::udp_bind(addr) {
                Ok(s) => break (s, addr),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(format!("bind {addr}: {e}")),
            }
        };
        if i >= n {
            // A two-party callee: answers call i - n's INVITE, which the server sends
            // to the gateway with the dialled number as the Request-URI user.
            let call = i - n;
            let uri = sip::parse::parse_uri(&a.uri_for(call)).map_err(|e| format!("--target: {e}"))?;
            let number = uri.user.unwrap_or_default();
            uas.as_mut().expect("two-party").add_callee(&number, sock.1);
            let mut p = Participant::new(i, sock.0, sock.1, media::Voice::Callee);
            p.group = 1;
            p.ts_step = callee_codec.1.rtp_samples_per_frame();
            per_thread[call % a.threads].push(p);
            continue;
        }
        let room = i / a.per_room as usize;
        let voice = media::voice_for(
            (i % a.per_room as usize) as u32,
            a.speakers_per_room,
            &a.silence,
            room,
        );
        ua.add_call(&a.uri_for(i), sock.1)?;
        per_thread[i % a.threads].push(Participant::new(i, sock.0, sock.1, voice));
    }

    println!(
        "sb-load: {n} calls to {} ({} rooms x {}), {} setups/s, {} RTP thread(s), send={:?}, rx-poll={:?}, SIP from {}, loadavg {}",
        a.target,
        a.rooms,
        a.per_room,
        a.rate,
        a.threads,
        mode,
        a.rx_poll,
        ua.local(),
        sys::loadavg()
    );
    if let Some(u) = &uas {
        println!(
            "sb-load: two-party: callees answer on {} with {} ({}), {} to {} RTP ports in use",
            u.local(),
            a.callee_codec,
            if a.callee_tone { "tone" } else { "noise" },
            a.rtp_base,
            port - 2
        );
    }
    let rx_every = (a.rx_interval_ms / 20).max(1);
    let handles: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(index, parts)| {
            let w = Worker {
                index,
                parts,
                mode,
                rx_every,
                rx_poll: a.rx_poll,
                shared: shared.clone(),
                tables: tables.clone(),
            };
            std::thread::Builder::new()
                .name(format!("rtp-{index}"))
                .spawn(move || w.run())
                .expect("spawn")
        })
        .collect();

    let t0 = Instant::now();
    let mono0 = sys::mono_ns();
    let now_ns = || sys::mono_ns();
    let server_pid = a.server_pid.map(|p| p.to_string());
    let server_cpu = || server_pid.as_deref().and_then(sys::proc_cpu);
    let self_cpu = || sys::proc_cpu("self");
    let mut progress = Progress::new(server_pid.clone(), t0);

    // Ramp: place calls at the configured rate.
    let mut next_call = 0usize;
    let ramp_deadline =
        Duration::from_secs_f64(n as f64 / a.rate + 64.0 * a.t1.as_secs_f64() + 5.0);
    let mut last_timers = 0u64;
    loop {
        let now = now_ns();
        let due = (((now - mono0) as f64 / 1e9) * a.rate).floor() as usize + 1;
        while next_call < n.min(due) && ua.pending_invites < a.max_pending {
            ua.start(next_call, now);
            next_call += 1;
        }
        ua.receive();
        handle_events(&mut ua, &shared);
        callee_sip(&mut uas, &shared, n, now, now - last_timers > 5_000_000);
        if now - last_timers > 5_000_000 {
            ua.on_timers(now);
            last_timers = now;
        }
        progress.maybe_print(&a, &ua, uas.as_ref(), &shared, "ramp");
        let done = ua.counters.established + ua.counters.failed;
        if done as usize >= n || t0.elapsed() > ramp_deadline {
            break;
        }
        ua.wait(uas_fd, 1);
    }
    let ramp_time = t0.elapsed();
    let setup_rate = ua.counters.established as f64 / secs(ramp_time).max(1e-9);
    println!(
        "ramp done in {:.1} s: {} established, {} failed ({:.0} setups/s achieved; setup p50 {:.1} ms p99 {:.1} ms max {:.1} ms)",
        secs(ramp_time),
        ua.counters.established,
        ua.counters.failed,
        setup_rate,
        ua.setup.quantile_ms(0.5),
        ua.setup.quantile_ms(0.99),
        ua.setup.max_ms()
    );

    // Warm-up, then the measurement window.
    let sip_idle = |ua: &mut ua::Ua,
                    uas: &mut Option<uas::Uas>,
                    shared: &Shared,
                    until: Instant,
                    progress: &mut Progress,
                    label: &str| {
        let mut last = 0;
        while Instant::now() < until {
            let now = now_ns();
            ua.receive();
            handle_events(ua, shared);
            callee_sip(uas, shared, n, now, now - last > 10_000_000);
            if now - last > 10_000_000 {
                ua.on_timers(now);
                last = now;
            }
            progress.maybe_print(&a, ua, uas.as_ref(), shared, label);
            ua.wait(uas_fd, 5);
        }
    };
    sip_idle(
        &mut ua,
        &mut uas,
        &shared,
        Instant::now() + a.warmup,
        &mut progress,
        "warmup",
    );
    let load_start = sys::loadavg();
    let sched = |pid: Option<&str>| pid.and_then(sys::sched_run_wait);
    let (s0, m0) = (sched(server_pid.as_deref()), sched(Some("self")));
    let w0 = (Instant::now(), server_cpu(), self_cpu());
    let calls_at_start = ua.counters.established - ua.counters.remote_byes;
    let callees_at_start = uas.as_ref().map_or(0, |u| u.live());
    shared.phase.store(PHASE_MEASURE, Ordering::Release);
    sip_idle(
        &mut ua,
        &mut uas,
        &shared,
        Instant::now() + a.duration,
        &mut progress,
        "measure",
    );
    shared.phase.store(PHASE_STOP, Ordering::Release);
    let w1 = (Instant::now(), server_cpu(), self_cpu());
    let callees_live = uas.as_ref().map_or(0, |u| u.live()) as u64;
    let (s1, m1) = (sched(server_pid.as_deref()), sched(Some("self")));
    let run_wait = |a: Option<(u64, u64)>, b: Option<(u64, u64)>| match (a, b) {
        (Some(a), Some(b)) => Some((
            (b.0.saturating_sub(a.0)) as f64 / 1e9,
            (b.1.saturating_sub(a.1)) as f64 / 1e9,
        )),
        _ => None,
    };
    let (server_rw, self_rw) = (run_wait(s0, s1), run_wait(m0, m1));
    let load_end = sys::loadavg();
    let reports: Vec<media::ThreadReport> = handles
        .into_iter()
        .map(|h| h.join().expect("rtp thread"))
        .collect();
    let window = secs(w1.0 - w0.0);

    // Hang up at the setup rate.
    let t_bye = Instant::now();
    let bye0 = now_ns();
    let mut next_bye = 0usize;
    let mut last = 0;
    loop {
        let now = now_ns();
        let due = (((now - bye0) as f64 / 1e9) * a.rate).floor() as usize + 1;
        while next_bye < n.min(due) && ua.pending_byes < a.max_pending {
            ua.hang_up(next_bye, now);
            next_bye += 1;
        }
        ua.receive();
        ua.events.clear();
        if let Some(u) = &mut uas {
            u.receive(now);
            u.events.clear();
        }
        if now - last > 5_000_000 {
            ua.on_timers(now);
            if let Some(u) = &mut uas {
                u.on_timers(now);
            }
            last = now;
        }
        // Two-party: wait for the server's BYEs to the callees too (2 s at most).
        let callees_done = uas.as_ref().is_none_or(|u| u.live() == 0)
            || t_bye.elapsed() > Duration::from_secs_f64(n as f64 / a.rate + 2.0);
        if next_bye >= n && ua.pending_byes == 0 && callees_done {
            break;
        }
        if t_bye.elapsed()
            > Duration::from_secs_f64(n as f64 / a.rate + 64.0 * a.t1.as_secs_f64() + 5.0)
        {
            break;
        }
        ua.wait(uas_fd, 1);
    }

    // Results.
    let mut gaps = stats::Histogram::default();
    let mut group_gaps = [stats::Histogram::default(), stats::Histogram::default()];
    let mut late = stats::Histogram::default();
    let (mut expected, mut got, mut sent_w, mut recv_w, mut send_err, mut skipped) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut worst_loss, mut lossy_streams, mut silent_streams) = (0.0f64, 0u64, 0u64);
    for r in &reports {
        gaps.merge(&r.gaps);
        gaps.merge(&r.callee_gaps);
        if two_party {
            group_gaps[0].merge(&r.gaps);
            group_gaps[1].merge(&r.callee_gaps);
        }
        late.merge(&r.late);
        sent_w += r.sent_in_window;
        recv_w += r.received_in_window;
        send_err += r.send_errors;
        skipped += r.skipped_ticks;
        for &(_, e, g) in &r.streams {
            expected += e;
            got += g.min(e);
            if e == 0 {
                silent_streams += 1;
                continue;
            }
            let loss = e.saturating_sub(g) as f64 / e as f64;
            if loss > 0.0 {
                lossy_streams += 1;
            }
            worst_loss = worst_loss.max(loss);
        }
    }
    // Streams that received nothing in the window are silent only if the call was up.
    let live = ua
        .calls
        .iter()
        .filter(|c| c.final_status / 100 == 2)
        .count() as u64;
    let live = live + callees_live;
    silent_streams = silent_streams.min(live);
    // The server sends one packet per leg per 20 ms tick with continuous sequence
    // numbers, so a server that falls behind shows up as fewer packets, not as
    // sequence gaps: compare what arrived with 50 pps for every live stream.
    let receiving = (reports.iter().map(|r| r.streams.len() as u64).sum::<u64>()).min(live);
    let nominal = receiving as f64 * 50.0 * window;
    let delivered_pct = if nominal > 0.0 {
        100.0 * recv_w as f64 / nominal
    } else {
        0.0
    };
    // CPU per participant only means something if the server kept up: a starved server
    // skips ticks and so spends less per participant than real time needs.
    // Two-party: per group (callers hear the callees through the server and the other
    // way round), and both must have kept up.
    let groups: Vec<GroupRx> = if two_party {
        let caller_live = live - callees_live;
        vec![
            GroupRx::of(&reports, 0, caller_live, window),
            GroupRx::of(&reports, 1, callees_live, window),
        ]
    } else {
        Vec::new()
    };
    let verbatim: u64 = reports.iter().map(|r| r.verbatim).sum();
    let caller_rx: u64 = reports.iter().map(|r| r.rx_pt[0].iter().sum::<u64>()).sum();
    let verbatim_pct = 100.0 * verbatim as f64 / caller_rx.max(1) as f64;
    let kept_up = delivered_pct >= 99.0 && groups.iter().all(|g| g.delivered_pct >= 99.0);
    let loss_pct = if expected > 0 {
        100.0 * (expected - got) as f64 / expected as f64
    } else {
        0.0
    };
    let cpu = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => Some(secs(b.saturating_sub(a))),
        _ => None,
    };
    let server_cpu_s = cpu(w0.1, w1.1);
    let load_cpu_s = cpu(w0.2, w1.2).unwrap_or(0.0);
    let server_pct = server_cpu_s.map(|c| 100.0 * c / window);
    // Participants: in two-party mode both legs of each call up at the window's start.
    let participants_at_start = calls_at_start + callees_at_start as u64;
    let per_core_raw = server_cpu_s
        .filter(|c| *c > 0.0)
        .map(|c| participants_at_start as f64 / (c / window));
    let calls_per_core = server_cpu_s
        .filter(|c| *c > 0.0 && two_party)
        .map(|c| calls_at_start.min(callees_at_start as u64) as f64 / (c / window));
    let c = &ua.counters;
    let mut failures: Vec<_> = c.failure_status.iter().collect();
    failures.sort();

    println!("--- summary ---");
    println!(
        "calls: {} requested, {} established, {} failed {:?}, {} timeouts, {} without media address; INVITE retransmissions {}",
        n, c.established, c.failed, failures, c.timeouts, c.no_media_addr, c.invite_retx
    );
    println!(
        "window {:.1} s (loadavg {} -> {}): sent {} pkts ({:.0} pps), received {} pkts ({:.0} pps), send errors {}",
        window,
        load_start,
        load_end,
        sent_w,
        sent_w as f64 / window,
        recv_w,
        recv_w as f64 / window,
        send_err
    );
    println!(
        "loss (RTP sequence gaps): {:.3} % ({} of {} expected), {} streams with loss, worst stream {:.2} %, {} live streams silent; \
received {:.2} % of nominal (50 pps x {} streams)",
        loss_pct,
        expected - got,
        expected,
        lossy_streams,
        100.0 * worst_loss,
        silent_streams,
        delivered_pct,
        receiving
    );
    println!(
        "inter-packet gap (server pacing, kernel timestamps): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        gaps.quantile_ms(0.5),
        gaps.quantile_ms(0.99),
        gaps.quantile_ms(0.999),
        gaps.max_ms()
    );
    println!(
        "our send lateness: p99 {:.2} ms, max {:.2} ms, skipped ticks {}",
        late.quantile_ms(0.99),
        late.max_ms(),
        skipped
    );
    for ((g, h), name) in groups.iter().zip(&group_gaps).zip(["callers", "callees"]) {
        println!(
            "  {name}: {} live streams, loss {:.3} % ({} of {}), {} streams with loss, worst {:.2} %, {} silent; received {:.2} % of nominal; gap p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            g.live, g.loss_pct(), g.expected - g.got, g.expected, g.lossy, 100.0 * g.worst, g.silent, g.delivered_pct,
            h.quantile_ms(0.5), h.quantile_ms(0.99), h.max_ms()
        );
    }
    let not_valid = if kept_up { "" } else { " (NOT VALID: the server did not keep up, see 'received % of nominal')" };
    match (server_cpu_s, server_pct, per_core_raw) {
        (Some(s), Some(p), Some(pc)) => println!(
            "server CPU: {:.2} s in {:.1} s = {:.1} % of one core; {} participants -> {:.0} participants per core{}",
            s, window, p, participants_at_start, pc, not_valid
        ),
        _ => println!("server CPU: not measured (pass --server-pid)"),
    }
    if let Some(u) = &uas {
        println!(
            "two-party calls: {} up in the window (PCMU <-> {}{}) -> {}",
            calls_at_start.min(callees_at_start as u64),
            a.callee_codec.to_uppercase(),
            if a.callee_codec == "pcmu" { ", relay path" } else { ", transcoded" },
            match calls_per_core {
                Some(cpc) => format!("{cpc:.0} calls per server core{not_valid}"),
                None => "calls per server core not measured (pass --server-pid)".into(),
            }
        );
        let pts = |g: usize| {
            let mut v = [0u64; 128];
            for r in &reports {
                v.iter_mut().zip(&r.rx_pt[g]).for_each(|(a, b)| *a += b);
            }
            v.iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(pt, c)| format!("PT {pt}: {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "received payload types (whole run): callers {}; callees {}; callers got {:.1} % of their packets with a callee's payload byte for byte (relay: ~100 %, transcoding: 0)",
            pts(0),
            pts(1),
            verbatim_pct
        );
        let k = &u.counters;
        println!(
            "callees: {} INVITEs, {} answered, {} ACKed, {} rejected, {} never ACKed, {} 200 retransmissions, {} INVITE retransmissions, {} BYEs from the server, {} other requests",
            k.invites, k.answered, k.confirmed, k.rejected, k.no_ack, k.ok_retx, k.invite_retx, k.byes, k.other_requests
        );
    }
    println!(
        "sb-load CPU: {:.2} s = {:.1} % of one core",
        load_cpu_s,
        100.0 * load_cpu_s / window
    );
    let fmt_rw = |rw: Option<(f64, f64)>| {
        rw.map(|(r, w)| format!("ran {r:.2} s, waited {w:.2} s for a CPU"))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "CPU contention (schedstat, all threads, window): server {}; sb-load {}",
        fmt_rw(server_rw),
        fmt_rw(self_rw)
    );
    println!(
        "hang-up: {} BYEs, {} answered 200, {} failed, {} retransmitted; {} BYEs from the server; {} stray responses, {} unparsable",
        c.byes, c.bye_ok, c.bye_failed, c.bye_retx, c.remote_byes, c.stray, c.parse_errors
    );

    let opt = |v: Option<f64>| {
        v.map(|x| format!("{x:.3}"))
            .unwrap_or_else(|| "null".into())
    };
    println!(
        "RESULT {{\"target\":\"{}\",\"rooms\":{},\"per_room\":{},\"calls\":{},\"established\":{},\"failed\":{},\
\"setup_rate_target\":{},\"setup_rate_achieved\":{:.1},\"setup_ms_p50\":{:.2},\"setup_ms_p99\":{:.2},\
\"window_s\":{:.2},\"pkts_sent\":{},\"pkts_received\":{},\"expected\":{},\"lost\":{},\"loss_pct\":{:.4},\
\"worst_stream_loss_pct\":{:.3},\"delivered_pct\":{:.3},\"streams_with_loss\":{},\"silent_streams\":{},\
\"gap_ms_p50\":{:.2},\"gap_ms_p99\":{:.2},\"gap_ms_p999\":{:.2},\"gap_ms_max\":{:.2},\
\"server_cpu_s\":{},\"server_cpu_pct\":{},\"participants_per_server_core\":{},\
\"load_cpu_pct\":{:.1},\"server_runq_wait_s\":{},\"load_runq_wait_s\":{},\"send_late_ms_p99\":{:.2},\"send_late_ms_max\":{:.2},\"send_errors\":{},\
\"bye_ok\":{},\"bye_failed\":{},\"remote_byes\":{},\"loadavg_start\":{},\"loadavg_end\":{}{}}}",
        a.target,
        a.rooms,
        a.per_room,
        n,
        c.established,
        c.failed,
        a.rate,
        setup_rate,
        ua.setup.quantile_ms(0.5),
        ua.setup.quantile_ms(0.99),
        window,
        sent_w,
        recv_w,
        expected,
        expected - got,
        loss_pct,
        100.0 * worst_loss,
        delivered_pct,
        lossy_streams,
        silent_streams,
        gaps.quantile_ms(0.5),
        gaps.quantile_ms(0.99),
        gaps.quantile_ms(0.999),
        gaps.max_ms(),
        opt(server_cpu_s),
        opt(server_pct),
        opt(per_core_raw.filter(|_| kept_up)),
        100.0 * load_cpu_s / window,
        opt(server_rw.map(|x| x.1)),
        opt(self_rw.map(|x| x.1)),
        late.quantile_ms(0.99),
        late.max_ms(),
        send_err,
        c.bye_ok,
        c.bye_failed,
        c.remote_byes,
        if load_start.is_empty() { "null".into() } else { load_start },
        if load_end.is_empty() { "null".into() } else { load_end },
        two_party_json(&a, &groups, &group_gaps, uas.as_ref(), calls_at_start.min(callees_at_start as u64), calls_per_core.filter(|_| kept_up), verbatim_pct),
    );
    Ok(())
}

/// The two-party callees' SIP: datagrams, then (when `timers`) timer G/H, then their
/// media starts and stops (callee i is participant n + i).
fn callee_sip(uas: &mut Option<uas::Uas>, shared: &Shared, n: usize, now: u64, timers: bool) {
    let Some(u) = uas else { return };
    u.receive(now);
    if timers {
        u.on_timers(now);
    }
    for ev in u.events.drain(..) {
        match ev {
            uas::UasEvent::Up(i, addr, pt) => {
                shared.remotes[n + i].store(media::pack_pt(addr, pt), Ordering::Relaxed)
            }
            uas::UasEvent::Gone(i) => shared.remotes[n + i].store(0, Ordering::Relaxed),
        }
    }
}

/// One group's receive figures over the window (two-party mode: 0 = callers, 1 = callees).
struct GroupRx {
    live: u64,
    expected: u64,
    got: u64,
    lossy: u64,
    worst: f64,
    silent: u64,
    delivered_pct: f64,
}

impl GroupRx {
    fn of(reports: &[media::ThreadReport], group: u8, live: u64, window: f64) -> GroupRx {
        let mut g = GroupRx { live, expected: 0, got: 0, lossy: 0, worst: 0.0, silent: 0, delivered_pct: 0.0 };
        let mut received = 0u64;
        for &(_, e, got) in reports.iter().flat_map(|r| &r.streams).filter(|s| s.0 == group) {
            received += got;
            g.expected += e;
            g.got += got.min(e);
            if e == 0 {
                g.silent += 1;
                continue;
            }
            let loss = e.saturating_sub(got) as f64 / e as f64;
            if loss > 0.0 {
                g.lossy += 1;
            }
            g.worst = g.worst.max(loss);
        }
        g.silent = g.silent.min(live);
        let nominal = live as f64 * 50.0 * window;
        g.delivered_pct = if nominal > 0.0 { 100.0 * received as f64 / nominal } else { 0.0 };
        g
    }

    fn loss_pct(&self) -> f64 {
        if self.expected > 0 {
            100.0 * (self.expected - self.got) as f64 / self.expected as f64
        } else {
            0.0
        }
    }
}

/// The RESULT fields of two-party mode (empty otherwise), each with a leading comma.
fn two_party_json(
    a: &args::Args,
    groups: &[GroupRx],
    gaps: &[stats::Histogram; 2],
    uas: Option<&uas::Uas>,
    calls_up: u64,
    calls_per_core: Option<f64>,
    verbatim_pct: f64,
) -> String {
    let (Some(u), [c, e]) = (uas, groups) else {
        return String::new();
    };
    let k = &u.counters;
    format!(
        ",\"mode\":\"two-party\",\"caller_codec\":\"pcmu\",\"callee_codec\":\"{}\",\"path\":\"{}\",\"calls_up\":{},\
\"calls_per_server_core\":{},\"caller_loss_pct\":{:.4},\"caller_delivered_pct\":{:.3},\"caller_worst_stream_loss_pct\":{:.3},\
\"callee_loss_pct\":{:.4},\"callee_delivered_pct\":{:.3},\"callee_worst_stream_loss_pct\":{:.3},\
\"caller_gap_ms_p99\":{:.2},\"callee_gap_ms_p99\":{:.2},\"caller_verbatim_pct\":{:.2},\"callee_answered\":{},\"callee_acked\":{},\"callee_rejected\":{},\"callee_no_ack\":{},\"callee_byes\":{}",
        a.callee_codec,
        if a.callee_codec == "pcmu" { "relay" } else { "transcode" },
        calls_up,
        calls_per_core.map(|x| format!("{x:.1}")).unwrap_or_else(|| "null".into()),
        c.loss_pct(),
        c.delivered_pct,
        100.0 * c.worst,
        e.loss_pct(),
        e.delivered_pct,
        100.0 * e.worst,
        gaps[0].quantile_ms(0.99),
        gaps[1].quantile_ms(0.99),
        verbatim_pct,
        k.answered,
        k.confirmed,
        k.rejected,
        k.no_ack,
        k.byes
    )
}

/// Starts (or stops) a participant's media when its call is set up (or ends).
fn handle_events(ua: &mut ua::Ua, shared: &Shared) {
    for ev in ua.events.drain(..) {
        match ev {
            ua::UaEvent::Established(i, Some(addr)) => {
                shared.remotes[i].store(media::pack(addr), Ordering::Relaxed)
            }
            ua::UaEvent::Established(_, None) => {}
            ua::UaEvent::Gone(i) => shared.remotes[i].store(0, Ordering::Relaxed),
        }
    }
}

/// Progress lines every `--report-every`: calls, packet rates, CPU of both sides.
struct Progress {
    server_pid: Option<String>,
    t0: Instant,
    last: Instant,
    last_sent: u64,
    last_recv: u64,
    last_server: Option<Duration>,
    last_self: Option<Duration>,
}

impl Progress {
    fn new(server_pid: Option<String>, t0: Instant) -> Progress {
        let last_server = server_pid.as_deref().and_then(sys::proc_cpu);
        Progress {
            server_pid,
            t0,
            last: Instant::now(),
            last_sent: 0,
            last_recv: 0,
            last_server,
            last_self: sys::proc_cpu("self"),
        }
    }

    fn maybe_print(&mut self, a: &args::Args, ua: &ua::Ua, uas: Option<&uas::Uas>, shared: &Shared, label: &str) {
        let dt = self.last.elapsed();
        if dt < a.report_every {
            return;
        }
        let (sent, recv) = (shared.total_sent(), shared.total_received());
        let sv = self.server_pid.as_deref().and_then(sys::proc_cpu);
        let me = sys::proc_cpu("self");
        let pct = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.0}%", 100.0 * secs(b.saturating_sub(a)) / secs(dt)),
            _ => "-".into(),
        };
        println!(
            "[{:6.1}s {label:7}] calls up {}{} failed {} pending {} | tx {:.0} pps rx {:.0} pps | \
server cpu {} sb-load cpu {} | load {}",
            secs(self.t0.elapsed()),
            ua.counters.established - ua.counters.remote_byes,
            uas.map(|u| format!(" (callees {})", u.live())).unwrap_or_default(),
            ua.counters.failed,
            ua.pending_invites,
            (sent - self.last_sent) as f64 / secs(dt),
            (recv - self.last_recv) as f64 / secs(dt),
            pct(self.last_server, sv),
            pct(self.last_self, me),
            sys::loadavg()
        );
        self.last = Instant::now();
        self.last_sent = sent;
        self.last_recv = recv;
        self.last_server = sv;
        self.last_self = me;
    }
}
