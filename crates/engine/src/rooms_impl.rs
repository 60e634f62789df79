//! Room commands of the engine (being implemented).

use crate::engine::{DialOut, Engine, EngineError};
use crate::room::*;
use std::time::Instant;

impl Engine {
    pub fn rooms(&self) -> Vec<RoomSnapshot> {
        Vec::new()
    }
    pub fn room(&self, _confid: &str) -> Result<RoomSnapshot, EngineError> {
        Err(EngineError::RoomNotFound)
    }
    pub fn end_room(&mut self, _now: Instant, _confid: &str) -> Result<RoomInfo, EngineError> {
        Err(EngineError::RoomNotFound)
    }
    pub fn dial_into_room(&mut self, _now: Instant, _confid: &str, _d: DialOut) -> Result<ParticipantInfo, EngineError> {
        Err(EngineError::RoomNotFound)
    }
    pub fn kick(&mut self, _now: Instant, _confid: &str, _pid: &str) -> Result<ParticipantInfo, EngineError> {
        Err(EngineError::RoomNotFound)
    }
    pub fn patch_participant(&mut self, _confid: &str, _pid: &str, _p: ParticipantPatch) -> Result<ParticipantInfo, EngineError> {
        Err(EngineError::RoomNotFound)
    }
    pub fn topology(&self, _confid: &str) -> Result<Vec<TopologyRule>, EngineError> {
        Err(EngineError::RoomNotFound)
    }
    pub fn change_topology(&mut self, _confid: &str, _rules: Vec<TopologyRule>) -> Result<Vec<TopologyRule>, EngineError> {
        Err(EngineError::RoomNotFound)
    }
}
