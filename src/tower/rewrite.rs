//! The URI of an attempt: the client's path and query moved onto a
//! deployment's endpoint.

use http::uri::{Authority, Uri};
use url::Url;

/// The client's `uri` moved onto `base` (a deployment's
/// [`base_url`](crate::Deployment::base_url), which ends in `/`): the
/// path, less `strip` when it starts with it at a segment boundary, goes
/// under the base's path, and the query is kept. Also returns the base's
/// authority, for the `Host` header.
///
/// The path is appended as it arrived, as a reverse proxy passes it: `.`
/// and `..` segments are not resolved here.
///
/// Computes in O(length of the URI and the base).
pub(crate) fn onto(base: &Url, uri: &Uri, strip: Option<&str>) -> Option<(Uri, Authority)> {
    let path = uri.path();
    let rest = match strip {
        Some(prefix) => strip_segments(path, prefix).unwrap_or(path),
        None => path,
    };
    let rest = rest.trim_start_matches('/');
    let base = base.as_str();
    let query = uri.query();
    let mut text = String::with_capacity(base.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
    text.push_str(base);
    if !text.ends_with('/') {
        text.push('/');
    }
    text.push_str(rest);
    if let Some(query) = query {
        text.push('?');
        text.push_str(query);
    }
    let rewritten: Uri = text.parse().ok()?;
    let authority = rewritten.authority()?.clone();
    Some((rewritten, authority))
}

/// `path` without `prefix` when `prefix` is a whole number of its leading
/// segments (`/v1` strips `/v1/chat` and `/v1`, not `/v10/chat`).
fn strip_segments<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let prefix = prefix.trim_end_matches('/');
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(base: &str, uri: &str, strip: Option<&str>) -> String {
        let base = Url::parse(base).unwrap();
        let uri: Uri = uri.parse().unwrap();
        let (uri, _) = onto(&base, &uri, strip).unwrap();
        uri.to_string()
    }

    #[test]
    fn keeps_the_endpoint_prefix_and_strips_the_base_path() {
        assert_eq!(
            rewrite("http://10.0.0.1:8000/v1/", "/v1/chat/completions", Some("/v1")),
            "http://10.0.0.1:8000/v1/chat/completions"
        );
        assert_eq!(
            rewrite("http://10.0.0.1:8000/v1/", "/chat/completions", None),
            "http://10.0.0.1:8000/v1/chat/completions"
        );
        assert_eq!(
            rewrite("http://h/openai/v1/", "/v1/models?limit=5&x=%20", Some("/v1/")),
            "http://h/openai/v1/models?limit=5&x=%20"
        );
    }

    #[test]
    fn strips_whole_segments_only() {
        assert_eq!(
            rewrite("http://h/v1/", "/v10/models", Some("/v1")),
            "http://h/v1/v10/models"
        );
        assert_eq!(rewrite("http://h/v1/", "/v1", Some("/v1")), "http://h/v1/");
        assert_eq!(rewrite("http://h/", "/", None), "http://h/");
    }

    #[test]
    fn takes_a_client_uri_in_absolute_form_by_its_path() {
        assert_eq!(
            rewrite("http://10.0.0.2:9000/", "http://gateway.local/v1/chat?stream=1", Some("/v1")),
            "http://10.0.0.2:9000/chat?stream=1"
        );
    }

    #[test]
    fn gives_the_authority_for_the_host_header() {
        let base = Url::parse("http://[::1]:8080/v1/").unwrap();
        let (_, authority) = onto(&base, &"/v1/x".parse().unwrap(), Some("/v1")).unwrap();
        assert_eq!(authority.as_str(), "[::1]:8080");
        let base = Url::parse("https://api.example.com/v1/").unwrap();
        let (_, authority) = onto(&base, &"/x".parse().unwrap(), None).unwrap();
        assert_eq!(authority.as_str(), "api.example.com");
    }

    #[test]
    fn does_not_resolve_dot_segments() {
        assert_eq!(
            rewrite("http://h/v1/", "/v1/../admin", Some("/v1")),
            "http://h/v1/../admin"
        );
    }
}
