//! Endpoint URL validation and normalization, and [`EndpointProblem`], what
//! is wrong with an endpoint that is refused.
//!
//! Two spellings of one endpoint must give one key. `url` already lowercases
//! the scheme and host, maps IDN hosts to punycode, canonicalizes IPv4 and
//! IPv6 literals, drops default ports, writes an empty path as `/` and
//! resolves `.`/`..` segments; on top of that we drop the trailing dot of a
//! fully qualified host name, drop a trailing slash and canonicalize
//! percent-encoding in the path (decode unreserved characters, uppercase
//! the hex of the rest).
//!
//! An input that does not parse is never quoted: a value that is not a URL
//! is as likely an API key pasted into the wrong field. Errors describe its
//! shape instead.

use url::Url;

/// The longest endpoint URL accepted, in bytes.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// What is wrong with an endpoint URL.
///
/// None of these echo the URL's credentials, query or fragment, nor an input
/// that did not parse.
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
    /// The URL did not parse. Only the input's shape is kept: it may be a
    /// secret pasted into the wrong field.
    #[error("is not a valid URL ({}); the value is not shown, it may be a secret", Shape(*.len, *.starts_with))]
    #[non_exhaustive]
    Unparsable {
        /// The input's length in characters.
        len: usize,
        /// What the input starts with (`None` when it is empty).
        starts_with: Option<CharClass>,
    },
    /// The scheme is neither `http` nor `https`.
    #[error("scheme {} is not supported; use http or https", SchemeShown(.scheme.as_deref(), *.len))]
    #[non_exhaustive]
    Scheme {
        /// The scheme found, lowercased; `None` when it is longer than
        /// [`MAX_SHOWN_SCHEME`](Self::MAX_SHOWN_SCHEME) characters, since the
        /// "scheme" of a pasted key such as `sk-…:…` is the key.
        scheme: Option<String>,
        /// The scheme's length in characters.
        len: usize,
    },
    /// The host name has an empty label: two dots in a row or a leading dot
    /// (`h..example`, `.h`); a single trailing dot is dropped instead.
    #[error("host has an empty label (two dots in a row, or a dot at the start)")]
    EmptyHostLabel,
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
    #[non_exhaustive]
    TooLong {
        /// The input's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl EndpointProblem {
    /// The longest scheme an error quotes, in characters. Seven is shorter
    /// than any API key, and longer than every scheme in common use.
    ///
    /// ```
    /// assert_eq!(modelfleet::EndpointProblem::MAX_SHOWN_SCHEME, 7);
    /// ```
    pub const MAX_SHOWN_SCHEME: usize = 7;
}

/// What kind of character an input starts with, the part of an unparsable
/// endpoint that errors show.
///
/// ```
/// use modelfleet::{CharClass, Deployment, EndpointProblem, Error};
///
/// let err = Deployment::builder("openai", "gpt-4").endpoint("sk-proj-abc").build().unwrap_err();
/// let Error::InvalidEndpoint { problem, .. } = err else { unreachable!() };
/// assert!(matches!(
///     problem,
///     EndpointProblem::Unparsable { len: 11, starts_with: Some(CharClass::Letter), .. }
/// ));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CharClass {
    /// An alphabetic character (any script).
    Letter,
    /// A decimal digit.
    Digit,
    /// White space.
    WhiteSpace,
    /// Anything else: punctuation, symbols, control characters.
    Symbol,
}

impl CharClass {
    fn of(c: char) -> Self {
        if c.is_alphabetic() {
            Self::Letter
        } else if c.is_numeric() {
            Self::Digit
        } else if c.is_whitespace() {
            Self::WhiteSpace
        } else {
            Self::Symbol
        }
    }
}

impl std::fmt::Display for CharClass {
    /// As the error messages write it: `a letter`, `a digit`, `white space`,
    /// `a symbol`.
    ///
    /// ```
    /// assert_eq!(modelfleet::CharClass::Digit.to_string(), "a digit");
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Letter => "a letter",
            Self::Digit => "a digit",
            Self::WhiteSpace => "white space",
            Self::Symbol => "a symbol",
        })
    }
}

/// The shape of an unparsable input, as its error shows it: its length in
/// characters and the class of its first character.
struct Shape(usize, Option<CharClass>);

impl Shape {
    fn of(input: &str) -> Self {
        Self(
            input.chars().count(),
            input.chars().next().map(CharClass::of),
        )
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            None => f.write_str("empty"),
            Some(class) => write!(f, "{} characters, starting with {class}", self.0),
        }
    }
}

/// A rejected scheme: quoted when short, else only its length.
struct SchemeShown<'a>(Option<&'a str>, usize);

impl std::fmt::Display for SchemeShown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(s) => write!(f, "{s:?}"),
            None => write!(
                f,
                "of {} characters (not shown, it may be a secret)",
                self.1
            ),
        }
    }
}

/// The shape of an input that did not parse.
fn unparsable(input: &str) -> EndpointProblem {
    let Shape(len, starts_with) = Shape::of(input);
    EndpointProblem::Unparsable { len, starts_with }
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
    let url = Url::parse(input).map_err(|e| (unparsable(input), Some(e)))?;
    normalize_url(url).map_err(|p| (p, None))
}

/// Checks and normalizes an already parsed URL.
pub(crate) fn normalize_url(mut url: Url) -> Result<Url, EndpointProblem> {
    if !matches!(url.scheme(), "http" | "https") {
        let scheme = url.scheme();
        let len = scheme.chars().count();
        return Err(EndpointProblem::Scheme {
            scheme: (len <= EndpointProblem::MAX_SHOWN_SCHEME).then(|| scheme.to_owned()),
            len,
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
    if let Some(host) = url.domain() {
        // `h.example.` names the same host as `h.example` (the dot is DNS's
        // empty root label); any other empty label names no host.
        let name = host.strip_suffix('.').unwrap_or(host);
        if name.split('.').any(str::is_empty) {
            return Err(EndpointProblem::EmptyHostLabel);
        }
        if name.len() != host.len() {
            let name = name.to_owned();
            // Cannot fail: `name` is a label sequence `url` has just parsed.
            url.set_host(Some(&name))
                .map_err(|_| EndpointProblem::EmptyHostLabel)?;
        }
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
/// put in an error message. An input that is not a URL with a host and a
/// scheme short enough to quote is shown only by its shape: a pasted key
/// (`sk-…`, or `sk-…:…`, which parses with the key as its scheme) is not.
pub(crate) fn redact(input: &str) -> String {
    let quotable = input.is_empty()
        || Url::parse(input).is_ok_and(|u| {
            u.has_host() && u.scheme().chars().count() <= EndpointProblem::MAX_SHOWN_SCHEME
        });
    if !quotable {
        return format!("<not a URL: {}>", Shape::of(input));
    }
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
        assert_eq!(redact("http://u:pw@h:8080/x?k=v"), "http://***@h:8080/x…");
        assert_eq!(
            redact("http://u:pw@h:99999/"),
            "<not a URL: 20 characters, starting with a letter>"
        );
        assert_eq!(
            redact("u:pw@h"),
            "<not a URL: 6 characters, starting with a letter>"
        );
        assert_eq!(
            redact("sk-live-abc:def"),
            "<not a URL: 15 characters, starting with a letter>"
        );
        assert_eq!(redact("http://h/x"), "http://h/x");
    }
}
