//! Signal processing shared by the codecs, at the 16 kHz mixing rate.
//!
//! - [`resample`]: streaming 8 kHz ⇄ 16 kHz half-band converters (G.711 legs).
//! - [`plc`]: repeat-and-fade packet-loss concealment for codecs without their own.
//!
//! Sans-IO and allocation-free: every state lives in fixed arrays created with
//! the decoder or encoder that owns it.

pub mod goertzel;
pub mod plc;
pub mod resample;
