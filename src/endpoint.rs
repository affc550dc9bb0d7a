//! Endpoint URL validation and normalization, and [`EndpointProblem`], what
//! is wrong with an endpoint that is refused.
//!
//! Two spellings of one endpoint must give one key. `url` already lowercases
//! the scheme and host, maps IDN hosts to punycode, canonicalizes IPv4 and
//! IPv6 literals, drops default ports and resolves `.`/`..` segments; on top
//! of that we drop a trailing slash and canonicalize percent-encoding in the
//! path (decode unreserved characters, uppercase the hex of the rest).

use url::Url;

/// The longest endpoint URL accepted, in bytes.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// What is wrong with an endpoint URL.
///
/// None of these echo the URL's credentials, query or fragment.
///
/// ```
/// use modelfleet::EndpointProblem;
/// assert_eq!(
///     EndpointProblem::Userinfo.to_string(),
///     "carries credentials (user or password); keep secrets out of endpoints"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointProblem {
    /// The URL did not parse.
    #[error("{input:?} is not a valid URL")]
    Unparsable {
        /// The input, with anything between `://` and `@` and after `?` or `#` redacted.
        input: String,
    },
    /// The scheme is neither `http` nor `https`.
    #[error("scheme {scheme:?} is not supported; use http or https")]
    Scheme {
        /// The scheme found.
        scheme: String,
    },
    /// The URL has a user name or password.
    #[error("carries credentials (user or password); keep secrets out of endpoints")]
    Userinfo,
    /// The URL has a query string (`?…`), which often carries API keys.
    #[error("has a query string; endpoints may not carry one (it often holds secrets)")]
    Query,
    /// The URL has a fragment (`#…`).
    #[error("has a fragment (#…); endpoints may not carry one")]
    Fragment,
    /// The URL is longer than [`MAX_ENDPOINT_LEN`](crate::MAX_ENDPOINT_LEN) bytes.
    #[error("is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The input's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Parses, checks and normalizes an endpoint URL.
pub(crate) fn normalize(input: &str) -> Result<Url, (EndpointProblem, Option<url::ParseError>)> {
    if input.len() > MAX_ENDPOINT_LEN {
        return Err((
            EndpointProblem::TooLong {
                len: input.len(),
                max: MAX_ENDPOINT_LEN,
            },
            None,
        ));
    }
    let url = Url::parse(input).map_err(|e| {
        (
            EndpointProblem::Unparsable {
                input: redact(input),
            },
            Some(e),
        )
    })?;
    normalize_url(url).map_err(|p| (p, None))
}

/// Checks and normalizes an already parsed URL.
pub(crate) fn normalize_url(mut url: Url) -> Result<Url, EndpointProblem> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EndpointProblem::Scheme {
            scheme: url.scheme().chars().take(32).collect(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointProblem::Userinfo);
    }
    if url.query().is_some() {
        return Err(EndpointProblem::Query);
    }
    if url.fragment().is_some() {
        return Err(EndpointProblem::Fragment);
    }
    let path = canonical_path(url.path());
    if path != url.path() {
        url.set_path(&path);
    }
    // Normalizing can lengthen a URL (punycode, percent-encoding); the limit
    // holds for the normal form too, so every key's text parses back.
    if url.as_str().len() > MAX_ENDPOINT_LEN {
        return Err(EndpointProblem::TooLong {
            len: url.as_str().len(),
            max: MAX_ENDPOINT_LEN,
        });
    }
    Ok(url)
}

/// Decodes percent-escapes of unreserved characters, uppercases the hex of
/// the others, encodes a `%` that starts no escape as `%25`, and drops
/// trailing slashes (but keeps the root `/`).
///
/// The result is its own normal form: decoding never forms a new escape
/// (a lone `%` before decoded hex digits would otherwise turn `/%%41` into
/// `/%A` and then into something else on the next pass).
fn canonical_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let h = bytes.get(i + 1).copied().and_then(hex);
            let l = bytes.get(i + 2).copied().and_then(hex);
            if let (Some(h), Some(l)) = (h, l) {
                let b = h * 16 + l;
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    out.push(b as char);
                } else {
                    out.push('%');
                    out.push(bytes[i + 1].to_ascii_uppercase() as char);
                    out.push(bytes[i + 2].to_ascii_uppercase() as char);
                }
                i += 3;
            } else {
                out.push_str("%25");
                i += 1;
            }
            continue;
        }
        // `path` is ASCII: `url` percent-encodes everything else.
        out.push(bytes[i] as char);
        i += 1;
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A URL-ish input with its credentials, query and fragment cut out, safe to
/// put in an error message.
pub(crate) fn redact(input: &str) -> String {
    let mut s = input;
    let mut suffix = "";
    if let Some(cut) = s.find(['?', '#']) {
        s = &s[..cut];
        suffix = "…";
    }
    let redacted = match s.find("://") {
        Some(start) => {
            let auth_start = start + 3;
            let auth_end = s[auth_start..]
                .find('/')
                .map_or(s.len(), |p| auth_start + p);
            match s[auth_start..auth_end].rfind('@') {
                Some(at) => format!("{}***{}", &s[..auth_start], &s[auth_start + at..]),
                None => s.to_owned(),
            }
        }
        // Without a scheme separator we cannot tell a host from a secret.
        None if s.contains('@') => "***".to_owned(),
        None => s.to_owned(),
    };
    let mut out: String = redacted.chars().take(200).collect();
    if out.len() < redacted.len() {
        out.push('…');
    }
    out.push_str(suffix);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s).unwrap().to_string()
    }

    #[test]
    fn equivalent_spellings_normalize_alike() {
        let base = "http://example.com/v1";
        for s in [
            "http://example.com/v1",
            "HTTP://EXAMPLE.com/v1",
            "http://example.com:80/v1",
            "http://example.com/v1/",
            "http://example.com/%76%31",
            "http://example.com/a/../v1",
        ] {
            assert_eq!(n(s), base, "{s}");
        }
        assert_eq!(n("https://example.com:443"), "https://example.com/");
        assert_eq!(n("http://[::0:1]:8080/"), "http://[::1]:8080/");
        assert_eq!(n("http://bücher.example/"), "http://xn--bcher-kva.example/");
        assert_eq!(n("http://h/a%2fb"), "http://h/a%2Fb");
        assert_eq!(n("http://h/%%41"), "http://h/%25A");
        assert_eq!(n("http://h/%25A"), "http://h/%25A");
    }

    #[test]
    fn rejects_and_never_echoes_secrets() {
        for (s, want) in [
            ("ftp://h/", "scheme"),
            ("http://u:pw@h/", "credentials"),
            ("http://u@h/", "credentials"),
            ("http://h/?api_key=s3cret", "query"),
            ("http://h/#s3cret", "fragment"),
            ("not a url", "not a valid URL"),
        ] {
            let (p, _) = normalize(s).unwrap_err();
            let msg = p.to_string();
            assert!(msg.contains(want), "{s}: {msg}");
            assert!(!msg.contains("pw") && !msg.contains("s3cret"), "{msg}");
        }
    }

    #[test]
    fn redact_cuts_userinfo_and_query() {
        assert_eq!(redact("http://u:pw@h:99999/x?k=v"), "http://***@h:99999/x…");
        assert_eq!(redact("u:pw@h"), "***");
        assert_eq!(redact("http://h/x"), "http://h/x");
    }
}
