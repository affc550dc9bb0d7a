//! Error codes and messages in the body of a 400, 413 or 422 response.

use crate::health::FailureKind;

/// Phrases that say the prompt did not fit the context window: OpenAI's
/// error code and message (vLLM and other OpenAI-compatible servers send
/// the same message), and Anthropic's message.
pub(super) const CONTEXT_WINDOW: &[&str] = &[
    "context_length_exceeded",
    "maximum context length",
    "prompt is too long",
];

/// Phrases that say a content filter refused the request: Azure OpenAI's
/// error code and inner code, and OpenAI's code.
pub(super) const CONTENT_FILTER: &[&str] = &[
    "content_filter",
    "content_policy_violation",
    "ResponsibleAIPolicyViolation",
];

/// The kind an error body names, if it names one. Context window first: a
/// request that cannot fit was not judged for its content.
///
/// Compares ASCII letters case-insensitively; the body need not be UTF-8
/// or JSON. O(body length × phrase lengths); allocates nothing.
pub(super) fn named_kind(body: &[u8]) -> Option<FailureKind> {
    if CONTEXT_WINDOW.iter().any(|p| contains(body, p)) {
        Some(FailureKind::ContextWindowExceeded)
    } else if CONTENT_FILTER.iter().any(|p| contains(body, p)) {
        Some(FailureKind::ContentFiltered)
    } else {
        None
    }
}

fn contains(body: &[u8], phrase: &str) -> bool {
    body.windows(phrase.len())
        .any(|w| w.eq_ignore_ascii_case(phrase.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_phrases_in_any_case_and_anywhere() {
        let openai = br#"{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        assert_eq!(named_kind(openai), Some(FailureKind::ContextWindowExceeded));
        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 200001 tokens > 200000 maximum"}}"#;
        assert_eq!(
            named_kind(anthropic),
            Some(FailureKind::ContextWindowExceeded)
        );
        let azure = br#"{"error":{"code":"content_filter","innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#;
        assert_eq!(named_kind(azure), Some(FailureKind::ContentFiltered));
        assert_eq!(
            named_kind(b"CONTENT_POLICY_VIOLATION"),
            Some(FailureKind::ContentFiltered)
        );
        assert_eq!(
            named_kind(b"\xff\xfe prompt IS too long \x00"),
            Some(FailureKind::ContextWindowExceeded)
        );
        assert_eq!(named_kind(br#"{"error":"invalid model"}"#), None);
        assert_eq!(named_kind(b""), None);
        assert_eq!(named_kind(b"content_filte"), None);
    }

    #[test]
    fn context_window_wins_over_content_filter() {
        assert_eq!(
            named_kind(b"content_filter: maximum context length"),
            Some(FailureKind::ContextWindowExceeded)
        );
    }
}
