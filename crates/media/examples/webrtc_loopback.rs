//! A browser calls the WebRTC gateway and hears itself: the gateway's plain RTP side is
//! an RTP echo, so whatever the browser sends comes straight back through DTLS-SRTP.
//!
//!   cargo run -p media --example webrtc_loopback -- [--http ADDR] [--candidate IP]...
//!
//! Serves on ADDR (default 127.0.0.1:0):
//! - `GET /` a page with a plain `RTCPeerConnection` (no SDK): microphone via
//!   getUserMedia, createOffer, POST /offer, setRemoteDescription(answer); after 3 s it
//!   reads `getStats()` (inbound-rtp) and the level of the echoed audio through a WebAudio
//!   AnalyserNode and leaves `window.__result` / `window.__done` for
//!   `tests/kit/browser/run-page.mjs`.
//! - `POST /offer` the SDP offer in the body, the answer back (opus, PCMU, PCMA).
//!
//! Prints `READY http://ADDR/` on stdout once listening, and the gateway's events on
//! stderr (with `WEBRTC_LOOPBACK_SDP=1` the offers and answers too). `tests/webrtc_chromium.rs` drives it with headless Chromium.

use media::webrtc::{GatewayConfig, WebRtcGateway};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream, UdpSocket};

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>webrtc loopback</title></head>
<body><pre id="log"></pre>
<script>
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (m) => { console.log(m); document.getElementById('log').textContent += m + '\n'; };
(async () => {
  const r = {};
  try {
    const pc = new RTCPeerConnection();
    pc.oniceconnectionstatechange = () => log('ice ' + pc.iceConnectionState);
    const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    mic.getTracks().forEach((t) => pc.addTrack(t, mic));
    const remote = new Promise((res) => { pc.ontrack = (e) => res(e.streams[0] || new MediaStream([e.track])); });
    await pc.setLocalDescription(await pc.createOffer());
    const resp = await fetch('/offer', { method: 'POST', body: pc.localDescription.sdp });
    const body = await resp.text();
    if (!resp.ok) throw new Error('POST /offer: ' + resp.status + ' ' + body);
    await pc.setRemoteDescription({ type: 'answer', sdp: body });
    const stream = await remote;
    // Chromium feeds a remote WebRTC stream to WebAudio only while a media element plays it.
    const el = new Audio(); el.srcObject = stream; el.muted = true; el.play().catch(() => {});
    const ctx = new AudioContext();
    await ctx.resume();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 2048;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    let peakRms = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 3000) {
      await sleep(50);
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const v of buf) sum += v * v;
      peakRms = Math.max(peakRms, Math.sqrt(sum / buf.length));
    }
    r.analyserPeakRms = peakRms;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        r.packetsReceived = s.packetsReceived;
        r.bytesReceived = s.bytesReceived;
        r.audioLevel = s.audioLevel;
        r.totalAudioEnergy = s.totalAudioEnergy;
        r.codecId = s.codecId;
      }
      if (s.type === 'outbound-rtp' && s.kind === 'audio') r.packetsSent = s.packetsSent;
      if (s.type === 'codec' && s.mimeType) (r.codecs = r.codecs || []).push(s.mimeType + '/' + s.payloadType);
    });
    r.iceConnectionState = pc.iceConnectionState;
    r.connectionState = pc.connectionState;
    pc.close();
  } catch (e) {
    r.error = String(e);
  }
  log(JSON.stringify(r));
  window.__result = r;
  window.__done = true;
})();
</script></body></html>
"#;

fn main() {
    let mut http = "127.0.0.1:0".to_string();
    let mut candidates: Vec<IpAddr> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--http" => http = args.next().expect("--http ADDR"),
            "--candidate" => candidates.push(args.next().expect("--candidate IP").parse().expect("an IP address")),
            other => panic!("unknown argument {other}"),
        }
    }
    if candidates.is_empty() {
        candidates.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let cfg = GatewayConfig { candidates, ..GatewayConfig::default() };
    let (gw, events) = WebRtcGateway::start(cfg).expect("gateway");
    std::thread::spawn(move || {
        for e in events {
            eprintln!("EVENT {e:?}");
        }
    });
    let listener = TcpListener::bind(&http).expect("bind http");
    println!("READY http://{}/", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    for conn in listener.incoming().flatten() {
        let gw = gw.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve(conn, &gw) {
                eprintln!("http: {e}");
            }
        });
    }
}

fn serve(conn: TcpStream, gw: &WebRtcGateway) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut length = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut parts = request.split_whitespace();
    let (status, ctype, reply) = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/")) => ("200 OK", "text/html", PAGE.to_string()),
        (Some("POST"), Some("/offer")) => match answer(gw, &String::from_utf8_lossy(&body)) {
            Ok(sdp) => ("200 OK", "application/sdp", sdp),
            Err(e) => ("400 Bad Request", "text/plain", e),
        },
        _ => ("404 Not Found", "text/plain", "not found".into()),
    };
    let mut w = conn;
    write!(w, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}", reply.len())?;
    w.flush()
}

/// Answer the browser and put an RTP echo on the leg's plain side.
fn answer(gw: &WebRtcGateway, offer: &str) -> Result<String, String> {
    if std::env::var_os("WEBRTC_LOOPBACK_SDP").is_some() {
        eprintln!("OFFER\n{offer}");
    }
    let (id, answer, side) = gw.accept_offer(offer, &["opus", "PCMU", "PCMA"]).map_err(|e| e.to_string())?;
    if std::env::var_os("WEBRTC_LOOPBACK_SDP").is_some() {
        eprintln!("ANSWER\n{answer}");
    }
    eprintln!("LEG {id} plain {} codecs {:?} te {:?}", side.local, side.codecs, side.telephone_event);
    let echo = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    gw.set_plain_remote(id, echo.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    Ok(answer)
}
