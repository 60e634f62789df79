//! How many leg records per second the recorder sustains, into a real SQLite file.
//!
//! ```text
//! cargo run --release -p store --example record_bench [LEGS]   # default 100000
//! ```
//!
//! A producer offers `LEGS` `LegEnded` events as fast as the recorder takes them
//! (an offer refused because the queue is full is retried after 1 ms, so every leg is
//! written), then closes the recorder and waits until everything is committed. The
//! figure is legs / (first offer → last commit). For comparison it first writes a
//! few thousand legs one `Store::record_leg` at a time, one commit each, which is
//! what the recorder's batching saves.

use engine::{Direction, EngineEvent, LegId, LegInfo, LegState, Service};
use std::time::{Duration, Instant};
use store::{spawn_recorder, Store};

fn leg(n: u64) -> LegInfo {
    let started_ms = 1_700_000_000_000 + n * 7;
    LegInfo {
        leg_id: LegId::new(),
        call_id: format!("{n:016x}@client.example"),
        direction: Direction::Inbound,
        state: LegState::Ended,
        service: Service::Echo,
        remote_uri: format!("sip:caller{n}@client.example"),
        local_uri: "sip:echo@switchboard.local".into(),
        local_tag: Some(format!("{n:08x}")),
        remote_tag: Some(format!("{:08x}", n * 31)),
        started_ms,
        answered_ms: Some(started_ms + 150),
        ended_ms: Some(started_ms + 62_000),
        end_status: Some(200),
        end_reason: Some("BYE".into()),
        codec: Some("PCMU".into()),
        domain: "switchboard.local".into(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let legs: u64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path()).await?;

    // One commit per leg, for comparison.
    let direct = 2_000u64;
    let t = Instant::now();
    for n in 0..direct {
        store.record_leg(&leg(1_000_000_000 + n), None).await?;
    }
    let direct_rate = direct as f64 / t.elapsed().as_secs_f64();

    // Through the recorder.
    let (recorder, writer) = spawn_recorder(store.clone());
    let events: Vec<EngineEvent> = (0..legs).map(|n| EngineEvent::LegEnded(leg(n))).collect();
    let mut in_record = Duration::ZERO;
    let mut offers = 0u64;
    let t = Instant::now();
    for ev in &events {
        loop {
            let o = Instant::now();
            let taken = recorder.record(ev);
            in_record += o.elapsed();
            offers += 1;
            if taken {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let stats = recorder.stats();
    drop(recorder);
    writer.await?;
    let elapsed = t.elapsed();
    let rate = legs as f64 / elapsed.as_secs_f64();

    let stored = store.recent_calls(u32::MAX, None).await?.len() as u64;
    assert_eq!(stored, legs + direct, "every leg written");
    let size = std::fs::metadata(dir.path().join(store::store::DB_FILE))?.len()
        + std::fs::metadata(dir.path().join("switchboard.db-wal")).map(|m| m.len()).unwrap_or(0);

    println!("store record_bench: {legs} legs into SQLite (WAL, synchronous=NORMAL)");
    println!(
        "  recorder (batched, ≤{} per commit): {rate:.0} legs/s  ({elapsed:.2?} in all)",
        store::recorder::MAX_BATCH
    );
    println!(
        "  Recorder::record: {:.2} µs per call ({offers} calls, {} refused while the queue was full and retried)",
        in_record.as_secs_f64() * 1e6 / offers as f64,
        stats.dropped
    );
    println!("  Store::record_leg one commit each: {direct_rate:.0} legs/s");
    println!(
        "  database + WAL: {:.1} MB, {:.0} bytes per leg",
        size as f64 / 1e6,
        size as f64 / (legs + direct) as f64
    );
    Ok(())
}
