//! The prompt set: `prompts_dir` if configured, else the built-in English set (the files
//! of `prompts/en`, compiled into the binary so that a lone binary has its prompts) written
//! to `<data_dir>/prompts/en` at start. Files already there with the same content are left
//! alone, so a restart does no writes.

use crate::config::Config;
use std::path::{Path, PathBuf};

/// The built-in prompts, by name (see `prompts/README.md`).
const BUILT_IN: &[(&str, &[u8])] = &[
    ("0", include_bytes!("../../../prompts/en/0.wav")),
    ("1", include_bytes!("../../../prompts/en/1.wav")),
    ("2", include_bytes!("../../../prompts/en/2.wav")),
    ("3", include_bytes!("../../../prompts/en/3.wav")),
    ("4", include_bytes!("../../../prompts/en/4.wav")),
    ("5", include_bytes!("../../../prompts/en/5.wav")),
    ("6", include_bytes!("../../../prompts/en/6.wav")),
    ("7", include_bytes!("../../../prompts/en/7.wav")),
    ("8", include_bytes!("../../../prompts/en/8.wav")),
    ("9", include_bytes!("../../../prompts/en/9.wav")),
    ("beep", include_bytes!("../../../prompts/en/beep.wav")),
    ("conference_ended", include_bytes!("../../../prompts/en/conference_ended.wav")),
    ("conference_not_started", include_bytes!("../../../prompts/en/conference_not_started.wav")),
    ("entering_conference", include_bytes!("../../../prompts/en/entering_conference.wav")),
    ("first_participant", include_bytes!("../../../prompts/en/first_participant.wav")),
    ("join", include_bytes!("../../../prompts/en/join.wav")),
    ("leave", include_bytes!("../../../prompts/en/leave.wav")),
    ("music", include_bytes!("../../../prompts/en/music.wav")),
    ("participant_pin", include_bytes!("../../../prompts/en/participant_pin.wav")),
    ("pin_prompt", include_bytes!("../../../prompts/en/pin_prompt.wav")),
    ("vm_enter_pin", include_bytes!("../../../prompts/en/vm_enter_pin.wav")),
    ("vm_goodbye", include_bytes!("../../../prompts/en/vm_goodbye.wav")),
    ("vm_greeting", include_bytes!("../../../prompts/en/vm_greeting.wav")),
    ("vm_message", include_bytes!("../../../prompts/en/vm_message.wav")),
    ("vm_new_message", include_bytes!("../../../prompts/en/vm_new_message.wav")),
    ("vm_new_messages", include_bytes!("../../../prompts/en/vm_new_messages.wav")),
    ("vm_no_messages", include_bytes!("../../../prompts/en/vm_no_messages.wav")),
    ("vm_you_have", include_bytes!("../../../prompts/en/vm_you_have.wav")),
    ("wait_for_owner", include_bytes!("../../../prompts/en/wait_for_owner.wav")),
    ("wrong_pin", include_bytes!("../../../prompts/en/wrong_pin.wav")),
    ("wrong_pin_bye", include_bytes!("../../../prompts/en/wrong_pin_bye.wav")),
];

/// The directory the engine reads prompts from, made ready.
pub fn prepare(cfg: &Config) -> Result<PathBuf, String> {
    if let Some(dir) = &cfg.prompts_dir {
        if !dir.is_dir() {
            return Err(format!("prompts_dir {}: not a directory", dir.display()));
        }
        let missing: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).filter(|n| !dir.join(format!("{n}.wav")).exists()).collect();
        if !missing.is_empty() {
            // As SEMS: a missing prompt is logged, and that prompt stays silent.
            tracing::warn!(dir = %dir.display(), missing = missing.join(", "), "prompts_dir lacks some prompts; they will be silent");
        }
        return Ok(dir.clone());
    }
    let dir = cfg.data_dir.join("prompts").join("en");
    write_built_in(&dir).map_err(|e| format!("writing the built-in prompts to {}: {e}", dir.display()))?;
    Ok(dir)
}

fn write_built_in(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, data) in BUILT_IN {
        let path = dir.join(format!("{name}.wav"));
        if std::fs::read(&path).is_ok_and(|have| have == *data) {
            continue;
        }
        // Written aside and renamed, so a prompt being played is never half a file.
        let tmp = dir.join(format!(".{name}.wav.tmp"));
        std::fs::write(&tmp, data)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_set_is_written_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("sb-prompts-{}", std::process::id()));
        write_built_in(&dir).unwrap();
        for (name, data) in BUILT_IN {
            assert_eq!(std::fs::read(dir.join(format!("{name}.wav"))).unwrap(), *data);
        }
        // A damaged file is put right on the next start.
        std::fs::write(dir.join("beep.wav"), b"x").unwrap();
        write_built_in(&dir).unwrap();
        assert!(std::fs::read(dir.join("beep.wav")).unwrap().starts_with(b"RIFF"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
