//! Closed-loop load on the SEMS webconference XML-RPC listener: how many `roomInfo`
//! calls per second it answers, and how fast.
//!
//! ```text
//! cargo run --release -p api --example xmlrpc_load -- --addr 127.0.0.1:8090 \
//!     --room 4711 --pin 123456 --seconds 10 --connections 8
//! ```
//! Each of `--connections` keep-alive connections sends `di("webconference",
//! "roomInfo", room, pin)` and waits for the reply before the next (what SEMS's GUI
//! does, once a second per user, many users at once). A reply counts when it is a 200
//! whose result starts with code 0; anything else is an error. Runs on one thread,
//! leaving the other cores to the server. Prints a report and one `RESULT {json}` line.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: String,
    room: String,
    pin: String,
    seconds: f64,
    connections: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { addr: "127.0.0.1:8090".into(), room: "4711".into(), pin: String::new(), seconds: 10.0, connections: 8 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = val()?,
            "--room" => a.room = val()?,
            "--pin" => a.pin = val()?,
            "--seconds" => a.seconds = val()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--connections" => a.connections = val()?.parse().map_err(|e| format!("--connections: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.connections == 0 || a.seconds <= 0.0 {
        return Err("--connections and --seconds must be positive".into());
    }
    Ok(a)
}

fn request(a: &Args) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<methodCall><methodName>di</methodName><params>\
         <param><value><string>webconference</string></value></param>\
         <param><value><string>roomInfo</string></value></param>\
         <param><value><string>{}</string></value></param>\
         <param><value><string>{}</string></value></param></params></methodCall>\n",
        a.room, a.pin
    );
    format!("POST /RPC2 HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}", a.addr, body.len()).into_bytes()
}

/// One reply off the connection: (status line ok and result code 0, bytes consumed).
fn parse_reply(buf: &[u8]) -> Option<(bool, usize)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse().ok()))??;
    if buf.len() < head_end + len {
        return None;
    }
    let body = &buf[head_end..head_end + len];
    // the result array's first element, the code, as SEMS writes it
    let code0: &[u8] = b"<array><data>\n<value><i4>0</i4>";
    let ok = head.starts_with("HTTP/1.1 200") && body.windows(code0.len()).any(|w| w == code0);
    Some((ok, head_end + len))
}

async fn connection(a: &Args, until: Instant) -> Result<(Vec<u32>, u64), String> {
    let req = request(a);
    let mut s = TcpStream::connect(&a.addr).await.map_err(|e| format!("connect {}: {e}", a.addr))?;
    s.set_nodelay(true).ok();
    let mut lat_us = Vec::new();
    let mut errors = 0;
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    while Instant::now() < until {
        let t0 = Instant::now();
        s.write_all(&req).await.map_err(|e| e.to_string())?;
        let (ok, used) = loop {
            if let Some(r) = parse_reply(&buf) {
                break r;
            }
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("server closed the connection".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..used);
        lat_us.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if !ok {
            errors += 1;
        }
    }
    Ok((lat_us, errors))
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("xmlrpc_load: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(a.seconds);
    let results = rt.block_on(async {
        let a = &a;
        let runs = (0..a.connections).map(|_| connection(a, until));
        futures_join_all(runs).await
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut lat: Vec<u32> = Vec::new();
    let mut errors = 0;
    for r in results {
        match r {
            Ok((l, e)) => {
                lat.extend(l);
                errors += e;
            }
            Err(e) => {
                eprintln!("xmlrpc_load: {e}");
                std::process::exit(1);
            }
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0) as f64 / 1000.0;
    let rps = lat.len() as f64 / elapsed;
    println!(
        "roomInfo: {} calls in {elapsed:.1} s = {rps:.0}/s over {} connections; errors {errors}; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        lat.len(),
        a.connections,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "RESULT {{\"calls\":{},\"seconds\":{elapsed:.2},\"per_second\":{rps:.0},\"errors\":{errors},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
        lat.len(),
        pct(0.5),
        pct(0.99)
    );
    if errors > 0 {
        std::process::exit(1);
    }
}

/// Runs the futures together on this thread.
async fn futures_join_all<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("all done")).collect()
}
