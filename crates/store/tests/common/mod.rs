//! Legs and rooms for the store's tests, and a fresh data directory for each test.
#![allow(dead_code)]

use engine::{Direction, LegId, LegInfo, LegState, RoomInfo, Service};

/// A fresh temporary data directory (removed when dropped); the store's file goes
/// in a subdirectory that does not exist yet, as on a first start.
pub struct DataDir {
    _tmp: tempfile::TempDir,
    pub path: std::path::PathBuf,
}

pub fn data_dir() -> DataDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("data");
    DataDir { _tmp: tmp, path }
}

/// An ended inbound echo leg, answered and hung up by the caller; `n` makes its ids unique.
pub fn ended_leg(n: u32, started_ms: u64) -> LegInfo {
    LegInfo {
        leg_id: LegId(format!("leg-{n:06}")),
        call_id: format!("call-{n}@client.example"),
        direction: Direction::Inbound,
        state: LegState::Ended,
        service: Service::Echo,
        remote_uri: format!("sip:alice{n}@client.example"),
        local_uri: "sip:echo@switchboard.local".into(),
        local_tag: Some(format!("lt{n}")),
        remote_tag: Some(format!("rt{n}")),
        started_ms,
        answered_ms: Some(started_ms + 120),
        ended_ms: Some(started_ms + 30_000),
        end_status: Some(200),
        end_reason: Some("BYE".into()),
        codec: Some("PCMU".into()),
        domain: "switchboard.local".into(),
    }
}

/// An outbound `ring` leg cancelled before answer: every optional field empty.
pub fn cancelled_leg(n: u32, started_ms: u64) -> LegInfo {
    LegInfo {
        leg_id: LegId(format!("leg-{n:06}")),
        call_id: format!("out-{n}@switchboard.local"),
        direction: Direction::Outbound,
        state: LegState::Ended,
        service: Service::Ring,
        remote_uri: "sip:bob@10.0.0.5".into(),
        local_uri: "sip:switchboard@switchboard.local".into(),
        local_tag: Some("ours".into()),
        remote_tag: None,
        started_ms,
        answered_ms: None,
        ended_ms: Some(started_ms + 5_000),
        end_status: Some(487),
        end_reason: Some("Request Terminated".into()),
        codec: None,
        domain: "switchboard.local".into(),
    }
}

/// Room number 4711.
pub fn room(confnumber: &str, startts: u64) -> RoomInfo {
    numbered_room(confnumber, "4711", startts)
}

pub fn numbered_room(confnumber: &str, number: &str, startts: u64) -> RoomInfo {
    RoomInfo {
        confid: format!("rCF-node1-{confnumber}"),
        confnumber: confnumber.into(),
        confroomnum: number.into(),
        confuri: format!("<sip:conf-{number}@switchboard.local>"),
        site: "main".into(),
        startts,
        domain: "switchboard.local".into(),
    }
}

/// An ended leg of a participant who dialled room `number`.
pub fn room_leg(n: u32, number: &str, started_ms: u64) -> LegInfo {
    LegInfo {
        service: Service::Room(number.into()),
        local_uri: format!("sip:conf-{number}@switchboard.local"),
        ..ended_leg(n, started_ms)
    }
}
