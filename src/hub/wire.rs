//! The Hub's wire formats: the list response, the token response, error bodies.

use serde_json::Value;

use super::trust::{clip, shown};
use crate::event::tree::Node;
use crate::event::HubEvent;
use crate::ports::{Page, Unreadable};

/// Parses `{"logs": [...]}`. `{}` and `{"logs": null}` are an empty page (gRPC-gateway
/// backends omit empty lists); an object without `logs` but with other fields (an error
/// body sent with 200, a changed API) is not taken for "no events", since that would move
/// the watermark past events. A body that is not such an object is an error (retried, then
/// loud). One item that is not a readable event does not spoil the page: it is set apart,
/// verbatim, with the reason, for the quarantine.
pub fn parse_page(body: &[u8]) -> Result<Page, String> {
    let top = Node::parse(body).map_err(|e| format!("the body is not valid JSON ({e})"))?;
    let Node::Object(mut top) = top else {
        return Err("the body is not a JSON object".into());
    };
    // Of repeated keys the last counts, as when read into a map.
    let logs = top
        .iter()
        .rposition(|(k, _)| k == "logs")
        .map(|i| top.swap_remove(i).1);
    match logs {
        None if !top.is_empty() => {
            // Keys are the Hub's text: a few, each clipped, so a hostile answer cannot
            // fill a log line or the checkpoint's last error.
            let mut keys: Vec<&str> = top.iter().map(|(k, _)| k.as_ref()).collect();
            keys.sort_unstable();
            keys.dedup();
            let more = keys.len().saturating_sub(5);
            let shown: Vec<String> = keys.iter().take(5).map(|k| clip(&shown(k), 40)).collect();
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            Err(format!("the body has no `logs` but has {shown:?}{more}"))
        }
        None | Some(Node::Null) => Ok(Page::default()),
        Some(Node::Array(items)) => {
            let mut page = Page::default();
            page.events.reserve(items.len());
            for item in items {
                match HubEvent::from_node(item) {
                    Ok(e) => page.events.push(e),
                    Err((e, item)) => page.unreadable.push(Unreadable {
                        item: item.to_value(),
                        reason: e.to_string(),
                    }),
                }
            }
            Ok(page)
        }
        Some(_) => Err("`logs` is not a list".into()),
    }
}

/// Parses `{"access_token": "..."}`.
pub fn parse_token(body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON ({e})"))?;
    match v.get("access_token") {
        Some(Value::String(t)) if !t.is_empty() => Ok(t.clone()),
        _ => Err("the body has no `access_token`".into()),
    }
}

/// A short, printable summary of an error body (`detail` / `message` when present),
/// clipped to [`super::trust::MAX_SHOWN_CHARS`]. Never echoes request headers, so no token
/// can appear in it.
pub fn error_summary(body: &[u8]) -> String {
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
        let pick = |k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        if let Some(s) = pick("detail").or_else(|| pick("message")) {
            return shown(&s);
        }
    }
    // Only the start of a large body: the lossy copy of 16 MiB is not needed for 200
    // characters.
    shown(&String::from_utf8_lossy(
        &body[..body.len().min(4 * super::trust::MAX_SHOWN_CHARS)],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        assert_eq!(parse_page(br#"{"logs": []}"#).unwrap().len(), 0);
        assert_eq!(parse_page(b"{}").unwrap().len(), 0);
        assert_eq!(parse_page(br#"{"logs": null}"#).unwrap().len(), 0);
        let err = parse_page(br#"{"message": "internal error"}"#).unwrap_err();
        assert!(err.contains("no `logs`"), "{err}");
        let two = parse_page(br#"{"logs": [{"timestamp": "2021-02-19T01:34:35Z"}, {"timestamp": "2021-02-19T01:34:36Z", "x": 1}], "next": null}"#).unwrap();
        assert_eq!(two.events.len(), 2);
        for bad in [
            &b"{\"logs\": [ {\"action\": "[..],
            b"[1]",
            b"{\"logs\": {\"a\": 1}}",
            b"{\"logs\": [\"\xff\"]}",
        ] {
            assert!(parse_page(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        // Bad items are set apart, verbatim; the good ones are kept.
        let mixed = parse_page(
            br#"{"logs": [{"timestamp": "2021-02-19T01:34:35Z"}, {"action": "a"}, 7, {"timestamp": 5}, {"timestamp": "2021-02-19T01:34:35Z", "action": 1}]}"#,
        )
        .unwrap();
        assert_eq!(mixed.events.len(), 1);
        let reasons: Vec<&str> = mixed.unreadable.iter().map(|u| u.reason.as_str()).collect();
        assert_eq!(mixed.unreadable.len(), 4, "{reasons:?}");
        assert_eq!(mixed.unreadable[1].item, serde_json::json!(7));
        assert!(reasons.iter().all(|r| !r.is_empty()));
    }

    #[test]
    fn tokens_and_errors() {
        assert_eq!(parse_token(br#"{"access_token": "abc"}"#).unwrap(), "abc");
        assert!(parse_token(br#"{"token": "abc"}"#).is_err());
        assert_eq!(
            error_summary(br#"{"detail": "Incorrect authentication credentials"}"#),
            "Incorrect authentication credentials"
        );
        assert_eq!(
            error_summary(br#"{"message":"forbidden","errinfo":{}}"#),
            "forbidden"
        );
        assert_eq!(error_summary(b"oops"), "oops");
    }

    #[test]
    fn what_a_hub_says_is_clipped() {
        // A 200 that is not a page, with a 2 MB key: the error names a clipped key.
        let key = "k".repeat(2_000_000);
        let body = format!("{{\"{key}\": 1, \"b\": 2, \"c\": 3, \"d\": 4, \"e\": 5, \"f\": 6, \"g\": 7}}");
        let err = parse_page(body.as_bytes()).unwrap_err();
        assert!(err.len() < 400, "{} characters", err.len());
        assert!(err.contains("and 2 more"), "{err}");
        let detail = format!("{{\"detail\": \"{}\"}}", "d".repeat(1_000_000));
        assert!(error_summary(detail.as_bytes()).len() < 300);
        assert!(error_summary(&vec![b'z'; 3_000_000]).len() < 300);
    }
}
