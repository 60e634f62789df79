//! The room list as the signalling task last published it.
//!
//! Listing and getting rooms is what API clients poll, often thousands of times a
//! second. Sending each such read through the signalling task would queue reads behind
//! SIP work and copy every room per request; instead the task republishes this list
//! whenever a room starts or ends, and readers take an `Arc` of it under a lock held
//! only for that clone.
//!
//! Read-your-writes holds: the task republishes after every input it handles and
//! before it sends any SIP message or API reply that input caused, so a client that
//! saw a room's 200 OK, or its API call return, finds the room here.

use crate::room::RoomInfo;
use crate::Engine;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// One published state of the room list.
#[derive(Debug, Default)]
pub struct RoomList {
    /// The engine's [`Engine::rooms_generation`] this was built from.
    pub generation: u64,
    /// Oldest room first (start time, then confid), as the engine lists them.
    pub rooms: Vec<Arc<RoomInfo>>,
    by_confid: HashMap<String, usize>,
}

impl RoomList {
    fn build(engine: &Engine) -> RoomList {
        let rooms = engine.room_infos();
        let by_confid = rooms.iter().enumerate().map(|(i, r)| (r.confid.clone(), i)).collect();
        RoomList { generation: engine.rooms_generation(), rooms, by_confid }
    }

    pub fn get(&self, confid: &str) -> Option<&Arc<RoomInfo>> {
        self.by_confid.get(confid).map(|&i| &self.rooms[i])
    }
}

/// Shared between the signalling task (writer) and the API (readers).
#[derive(Clone, Default)]
pub struct RoomDirectory {
    current: Arc<RwLock<Arc<RoomList>>>,
}

impl RoomDirectory {
    pub fn current(&self) -> Arc<RoomList> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Republishes if a room started or ended since the last call (a counter compare
    /// otherwise, so the task calls it after every input).
    pub fn refresh(&self, engine: &Engine) {
        let stale = self.current.read().unwrap_or_else(|e| e.into_inner()).generation != engine.rooms_generation();
        if stale {
            let list = Arc::new(RoomList::build(engine));
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = list;
        }
    }
}
