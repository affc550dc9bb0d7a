//! The URI of an attempt: the client's path and query moved onto a
//! deployment's endpoint.

use http::uri::{Authority, Uri};
use url::Url;

/// The client's `uri` moved onto `base` (a deployment's endpoint, with or
/// without its trailing `/`: one separator is put between): the path, less `strip` when it starts with it at a segment boundary, goes
/// under the base's path, and the query is kept. Also returns the base's
/// authority, for the `Host` header.
///
/// The path is appended as it arrived, except that a path with a `.` or
/// `..` segment (also written `%2e`) is refused (`None`): resolved by the
/// upstream, it could climb out of the endpoint's path, with the
/// deployment's credential attached.
///
/// Computes in O(length of the URI and the base).
pub(crate) fn onto(base: &Url, uri: &Uri, strip: Option<&str>) -> Option<(Uri, Authority)> {
    let path = uri.path();
    let rest = match strip {
        Some(prefix) => strip_segments(path, prefix).unwrap_or(path),
        None => path,
    };
    let rest = rest.trim_start_matches('/');
    if rest.split('/').any(is_dot_segment) {
        return None;
    }
    let base = base.as_str();
    let query = uri.query();
    let mut text =
        String::with_capacity(base.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
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
/// Whether `segment` is `.` or `..`, in any spelling of its dots.
fn is_dot_segment(segment: &str) -> bool {
    let dots = segment.to_ascii_lowercase().replace("%2e", ".");
    dots == "." || dots == ".."
}

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
            rewrite(
                "http://10.0.0.1:8000/v1/",
                "/v1/chat/completions",
                Some("/v1")
            ),
            "http://10.0.0.1:8000/v1/chat/completions"
        );
        assert_eq!(
            rewrite("http://10.0.0.1:8000/v1/", "/chat/completions", None),
            "http://10.0.0.1:8000/v1/chat/completions"
        );
        assert_eq!(
            rewrite(
                "http://h/openai/v1/",
                "/v1/models?limit=5&x=%20",
                Some("/v1/")
            ),
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
            rewrite(
                "http://10.0.0.2:9000/",
                "http://gateway.local/v1/chat?stream=1",
                Some("/v1")
            ),
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
    fn refuses_dot_segments() {
        let base = Url::parse("http://h/v1/").unwrap();
        for path in [
            "/v1/../admin",
            "/v1/./x",
            "/%2e%2E/admin",
            "/a/.%2e",
            "/x/%2E",
        ] {
            assert!(
                onto(&base, &path.parse().unwrap(), Some("/v1")).is_none(),
                "{path}"
            );
        }
        assert_eq!(
            rewrite("http://h/v1/", "/v1/a.b/..c", Some("/v1")),
            "http://h/v1/a.b/..c"
        );
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        /// Path segments that collide with a base path by prefix (`v1`,
        /// `v10`), dot segments, escapes, and plain text.
        fn segment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("v1".to_owned()),
                Just("v10".to_owned()),
                Just("..".to_owned()),
                Just(".".to_owned()),
                Just("%20".to_owned()),
                "[a-zA-Z0-9._~-]{1,12}",
            ]
        }

        fn path() -> impl Strategy<Value = Vec<String>> {
            prop::collection::vec(segment(), 0..6)
        }

        proptest! {
            #[test]
            fn the_result_is_base_then_the_rest_then_the_query(
                port in 1u16..,
                base in path(),
                incoming in path(),
                strip in prop::option::of(path()),
                trailing_slash in any::<bool>(),
                query in prop::option::of("[a-z0-9=&%]{0,16}"),
            ) {
                let base_text = format!("http://127.0.0.1:{port}/{}", base.iter().map(|s| format!("{s}/")).collect::<String>());
                let base_url = Url::parse(&base_text).unwrap();
                let mut path = format!("/{}", incoming.join("/"));
                if trailing_slash && !incoming.is_empty() {
                    path.push('/');
                }
                let uri_text = match &query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                };
                let uri: Uri = uri_text.parse().unwrap();
                let prefix = strip.as_ref().map(|s| format!("/{}", s.join("/")));

                let result = onto(&base_url, &uri, prefix.as_deref());

                // What should remain: the path less the prefix when the
                // prefix is a whole number of its leading segments.
                let stripped = match &strip {
                    Some(s) if s.len() <= incoming.len() && incoming[..s.len()] == s[..] => {
                        let mut rest = format!("/{}", incoming[s.len()..].join("/"));
                        if trailing_slash && s.len() < incoming.len() {
                            rest.push('/');
                        }
                        rest
                    }
                    _ => path.clone(),
                };
                // A dot segment in what remains: refused.
                if stripped.split('/').any(|s| s == "." || s == "..") {
                    prop_assert!(result.is_none());
                    return Ok(());
                }
                let (rewritten, authority) = result.unwrap();
                prop_assert_eq!(authority.as_str(), format!("127.0.0.1:{port}"));
                let mut expected = format!("{}{}", base_url.as_str(), stripped.trim_start_matches('/'));
                if let Some(q) = &query {
                    expected.push('?');
                    expected.push_str(q);
                }
                prop_assert_eq!(rewritten.to_string(), expected);
                prop_assert!(rewritten.path().starts_with(base_url.path()));
                prop_assert_eq!(rewritten.query(), uri.query());
            }
        }
    }
}
