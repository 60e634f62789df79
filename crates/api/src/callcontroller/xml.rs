//! The dialect's XML documents, byte for byte as reference 002 §1 and §5 give them.
//!
//! The reference writes values unescaped; we escape `&`, `<` and `>` (and `"` nowhere,
//! as no value sits in an attribute), which changes nothing for well-formed values and
//! keeps a hostile `sipMethod` or sipfrag from breaking the document.

use engine::apps::controller::{ControllerRecord, DialogLine, StatusLine};
use std::fmt::Write;

/// The namespace of every document (no whitespace in it, whatever wiki copies show).
pub const NAMESPACE: &str = "http://www.sipfoundry.org/sipX/schema/xml/call-status-00-00";

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// An error body: `<processing-status>` with flag, code and text, every line ending in `\n`.
pub fn processing_status(code: u16, text: &str) -> String {
    format!(
        "{DECLARATION}\n<processing-status xmlns=\"{NAMESPACE}\">\n<error-flag>ERROR</error-flag>\n\
         <error-code>{code}</error-code>\n<error-text>{}</error-text>\n</processing-status>\n",
        escape(text)
    )
}

/// A REFER record: `<status-lines>`, one `<status>` per line in arrival order.
pub fn status_lines(lines: &[StatusLine]) -> String {
    let mut s = format!("{DECLARATION}\n<status-lines xmlns=\"{NAMESPACE}\">");
    for l in lines {
        let _ = write!(
            s,
            "\n<status>\n\t<timestamp>{}</timestamp>\n\t<call-id>{}</call-id>\n\t<method>{}</method>\n\t<status-line>{}</status-line>\n</status>",
            l.timestamp_ms,
            escape(&l.call_id),
            escape(&l.method),
            escape(&l.status_line)
        );
    }
    s.push_str("\n</status-lines>\n");
    s
}

/// An INVITE record: `<dialogs>`, one `<dialog>` per leg (same layout as status-lines;
/// the reference does not fix these bytes, so they follow its sibling document).
pub fn dialogs(dialogs: &[DialogLine]) -> String {
    let mut s = format!("{DECLARATION}\n<dialogs xmlns=\"{NAMESPACE}\">");
    for d in dialogs {
        let _ = write!(
            s,
            "\n<dialog>\n\t<dialog-id>{}</dialog-id>\n\t<local-party>{}</local-party>\n\t<remote-party>{}</remote-party>\n\t<dialog-state>{}</dialog-state>\n</dialog>",
            escape(&d.dialog_id),
            escape(&d.local_party),
            escape(&d.remote_party),
            d.state.as_str()
        );
    }
    s.push_str("\n</dialogs>\n");
    s
}

/// What GET shows of a record.
pub fn record(r: &ControllerRecord) -> String {
    match r.method {
        engine::apps::controller::SetupMethod::Refer => status_lines(&r.lines),
        engine::apps::controller::SetupMethod::Invite => dialogs(&r.dialogs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::apps::controller::DialogState;

    #[test]
    fn processing_status_bytes() {
        assert_eq!(
            processing_status(400, "Bad parameter timeout = -1"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <processing-status xmlns=\"http://www.sipfoundry.org/sipX/schema/xml/call-status-00-00\">\n\
             <error-flag>ERROR</error-flag>\n\
             <error-code>400</error-code>\n\
             <error-text>Bad parameter timeout = -1</error-text>\n\
             </processing-status>\n"
        );
    }

    #[test]
    fn empty_status_lines_bytes() {
        assert_eq!(
            status_lines(&[]),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<status-lines xmlns=\"http://www.sipfoundry.org/sipX/schema/xml/call-status-00-00\">\n</status-lines>\n"
        );
    }

    #[test]
    fn status_lines_bytes() {
        let line = |ts, method: &str, text: &str| StatusLine { timestamp_ms: ts, call_id: "abc@10.0.0.1".into(), method: method.into(), status_line: text.into() };
        let doc = status_lines(&[line(1700000000123, "INVITE", "SIP/2.0 180 Ringing"), line(1700000000456, "NOTIFY", "SIP/2.0 100 Trying")]);
        assert_eq!(
            doc,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <status-lines xmlns=\"http://www.sipfoundry.org/sipX/schema/xml/call-status-00-00\">\n\
             <status>\n\t<timestamp>1700000000123</timestamp>\n\t<call-id>abc@10.0.0.1</call-id>\n\t<method>INVITE</method>\n\t<status-line>SIP/2.0 180 Ringing</status-line>\n</status>\n\
             <status>\n\t<timestamp>1700000000456</timestamp>\n\t<call-id>abc@10.0.0.1</call-id>\n\t<method>NOTIFY</method>\n\t<status-line>SIP/2.0 100 Trying</status-line>\n</status>\n\
             </status-lines>\n"
        );
    }

    #[test]
    fn dialogs_bytes() {
        assert_eq!(
            dialogs(&[]),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dialogs xmlns=\"http://www.sipfoundry.org/sipX/schema/xml/call-status-00-00\">\n</dialogs>\n"
        );
        let d = DialogLine { dialog_id: "c1:t1:t2".into(), local_party: "<sip:agent@a.test>".into(), remote_party: "<sip:alice@a.test>".into(), state: DialogState::Confirmed };
        assert_eq!(
            dialogs(&[d]),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dialogs xmlns=\"http://www.sipfoundry.org/sipX/schema/xml/call-status-00-00\">\n\
             <dialog>\n\t<dialog-id>c1:t1:t2</dialog-id>\n\t<local-party>&lt;sip:agent@a.test&gt;</local-party>\n\t<remote-party>&lt;sip:alice@a.test&gt;</remote-party>\n\t<dialog-state>Confirmed Dialog</dialog-state>\n</dialog>\n</dialogs>\n"
        );
    }

    #[test]
    fn hostile_values_stay_well_formed() {
        assert!(processing_status(406, "Call Setup Method <x>&y not supported").contains("<error-text>Call Setup Method &lt;x&gt;&amp;y not supported</error-text>"));
    }
}
