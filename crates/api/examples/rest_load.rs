//! Open-loop HTTP load at a fixed request rate, with a latency histogram: how the REST
//! API answers while something else (100 live rooms) keeps the server busy.
//!
//! ```text
//! cargo run --release -p api --example rest_load -- --addr 127.0.0.1:8080 --token T \
//!     --rate 10000 --seconds 10 --connections 32 --path /rest/v1/uc/conferences
//! ```
//! `--path` may repeat, or `--paths-file FILE` gives one path per line; requests cycle
//! through them. Prints a report and one `RESULT {json}` line.
//!
//! Model (wrk2's): `--connections` keep-alive connections, each sending GETs on its own
//! fixed schedule (together `--rate` per second), one request in flight per connection.
//! A request's latency runs from its scheduled time when the connection was still busy
//! with the previous one then (queueing the server caused counts: no coordinated
//! omission), and from the moment it was written otherwise (so the client's timer
//! wake-up slop, ~1 ms in tokio, does not). Runs on one thread, leaving the other cores
//! to the server. Any status other than 200 counts as an error.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: String,
    token: Option<String>,
    rate: f64,
    seconds: f64,
    connections: usize,
    paths: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { addr: "127.0.0.1:8080".into(), token: None, rate: 10_000.0, seconds: 10.0, connections: 32, paths: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = val()?,
            "--token" => a.token = Some(val()?),
            "--rate" => a.rate = val()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--seconds" => a.seconds = val()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--connections" => a.connections = val()?.parse().map_err(|e| format!("--connections: {e}"))?,
            "--path" => a.paths.push(val()?),
            "--paths-file" => {
                let f = val()?;
                let text = std::fs::read_to_string(&f).map_err(|e| format!("{f}: {e}"))?;
                a.paths.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned));
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.paths.is_empty() {
        return Err("give --path or --paths-file".into());
    }
    if a.rate <= 0.0 || a.connections == 0 {
        return Err("--rate and --connections must be positive".into());
    }
    Ok(a)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
    bytes: u64,
    late_starts: u64,
}

/// One keep-alive connection sending request `k`, `k + n`, `k + 2n`... of the schedule.
async fn connection(a: &Args, k: usize, start: Instant, end: Instant) -> Result<Tally, String> {
    let mut stream = TcpStream::connect(&a.addr).await.map_err(|e| format!("connect {}: {e}", a.addr))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let auth = a.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let interval = Duration::from_secs_f64(a.connections as f64 / a.rate);
    let offset = Duration::from_secs_f64(k as f64 / a.rate);
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut busy_until = start;
    for i in 0u64.. {
        let scheduled = start + offset + interval * i as u32;
        if scheduled >= end {
            break;
        }
        let from = if busy_until > scheduled {
            tally.late_starts += 1;
            scheduled
        } else {
            tokio::time::sleep_until(scheduled.into()).await;
            Instant::now()
        };
        let path = &a.paths[(i as usize * a.connections + k) % a.paths.len()];
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Accept: application/json\r\n\r\n", a.addr);
        stream.write_all(req.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
        let (status, len) = read_response(&mut stream, &mut buf).await?;
        busy_until = Instant::now();
        tally.latencies_us.push(busy_until.duration_since(from).as_micros() as u64);
        tally.bytes += len as u64;
        if status != 200 {
            tally.errors += 1;
        }
    }
    Ok(tally)
}

/// Reads one response with a Content-Length body; returns (status, body length).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, usize), String> {
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "non-UTF-8 head")?;
            let status = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line in {head:?}"))?;
            let len: usize = head
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim()))
                .and_then(|v| v.parse().ok())
                .ok_or("response without Content-Length")?;
            while buf.len() < head_end + 4 + len {
                let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err("connection closed mid-body".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, len));
        }
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let a = match parse_args() {
        Ok(a) => std::sync::Arc::new(a),
        Err(e) => {
            eprintln!("rest_load: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (tally, wall) = rt.block_on(async {
        let start = Instant::now() + Duration::from_millis(200);
        let end = start + Duration::from_secs_f64(a.seconds);
        let tasks: Vec<_> = (0..a.connections)
            .map(|k| {
                let a = a.clone();
                tokio::spawn(async move { connection(&a, k, start, end).await })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("connection task panicked"));
        }
        let wall = start.elapsed();
        let mut all = Tally::default();
        for r in results {
            match r {
                Ok(t) => {
                    all.latencies_us.extend(t.latencies_us);
                    all.errors += t.errors;
                    all.bytes += t.bytes;
                    all.late_starts += t.late_starts;
                }
                Err(e) => {
                    eprintln!("rest_load: connection failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        (all, wall)
    });
    let mut l = tally.latencies_us;
    l.sort_unstable();
    let n = l.len();
    let achieved = n as f64 / wall.as_secs_f64();
    let (p50, p90, p99, p999) = (percentile(&l, 50.0), percentile(&l, 90.0), percentile(&l, 99.0), percentile(&l, 99.9));
    let max = l.last().copied().unwrap_or(0) as f64 / 1000.0;
    println!(
        "{n} requests in {:.1} s ({achieved:.0}/s, target {:.0}/s), {} errors, {} late starts, {:.0} bytes/response\n\
         latency ms: p50 {p50:.3}  p90 {p90:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}",
        wall.as_secs_f64(),
        a.rate,
        tally.errors,
        tally.late_starts,
        tally.bytes as f64 / n.max(1) as f64
    );
    println!(
        "RESULT {{\"requests\":{n},\"rate\":{achieved:.0},\"target_rate\":{:.0},\"errors\":{},\"late_starts\":{},\"p50_ms\":{p50:.3},\"p90_ms\":{p90:.3},\"p99_ms\":{p99:.3},\"p999_ms\":{p999:.3},\"max_ms\":{max:.3}}}",
        a.rate, tally.errors, tally.late_starts
    );
    if tally.errors > 0 {
        std::process::exit(1);
    }
}
