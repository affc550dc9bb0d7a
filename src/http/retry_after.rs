//! `Retry-After` (delta-seconds or HTTP-date) and `retry-after-ms`.

use std::time::{Duration, SystemTime};

use ::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

/// The longest delay [`retry_after`] returns: a longer delay, a date
/// further ahead, or a number too large to hold, is taken as this.
///
/// A day covers every provider's quota window (daily quotas reset within
/// one), and keeps one broken header from taking a deployment out for the
/// rest of the time range.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderMap;
/// use modelfleet::http::{MAX_RETRY_AFTER, retry_after};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "99999999999999999999999".parse()?);
/// assert_eq!(retry_after(&headers, SystemTime::UNIX_EPOCH), Some(MAX_RETRY_AFTER));
/// assert_eq!(MAX_RETRY_AFTER, Duration::from_secs(24 * 60 * 60));
/// # Ok::<(), http::header::InvalidHeaderValue>(())
/// ```
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// OpenAI's and Azure OpenAI's delay in milliseconds.
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");

/// The delay from `wall_now` that the response's headers ask for, if they
/// ask for one that parses; at most [`MAX_RETRY_AFTER`].
///
/// - `retry-after-ms` (OpenAI, Azure OpenAI): milliseconds, digits with an
///   optional fraction (`1500`, `12.5`; digits past a nanosecond are
///   dropped). When it parses it wins over `Retry-After`.
/// - `Retry-After` ([RFC 9110 §10.2.3]): delta-seconds (digits only: `120`),
///   or an HTTP-date in any of its three forms (IMF-fixdate
///   `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850, asctime), whose delay is
///   the date minus `wall_now`; a date not after `wall_now` is zero delay
///   (come back now).
///
/// Spaces and tabs around a value are ignored. Anything else gives `None`
/// for that header (and the next one is tried): a negative, signed,
/// fractional (`Retry-After` only) or empty number, text that is neither
/// a number nor a date (a date that does not exist, names the wrong
/// weekday or falls before 1970 included), a value that is not visible
/// ASCII, or a header
/// given more than once (both are singletons; the lines may disagree, and
/// none can be trusted over the others).
///
/// `wall_now` is the wall-clock time the response arrived; the crate reads
/// no clock. O(length of the values); allocates nothing.
///
/// [RFC 9110 §10.2.3]: https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderMap;
/// use modelfleet::http::retry_after;
///
/// // Sun, 06 Nov 1994 08:49:37 GMT, minus 30 s.
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT".parse()?);
/// assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
/// headers.insert("retry-after", "120".parse()?);
/// assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
/// headers.insert("retry-after-ms", "1500".parse()?);
/// assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(1_500)));
/// headers.insert("retry-after-ms", "soon".parse()?);
/// assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
/// headers.insert("retry-after", "-1".parse()?);
/// assert_eq!(retry_after(&headers, now), None);
/// # Ok::<(), http::header::InvalidHeaderValue>(())
/// ```
#[must_use]
pub fn retry_after(headers: &HeaderMap, wall_now: SystemTime) -> Option<Duration> {
    let ms = single(headers, &RETRY_AFTER_MS).and_then(|v| millis(trim(v.as_bytes())));
    ms.or_else(|| single(headers, &RETRY_AFTER).and_then(|v| seconds_or_date(v, wall_now)))
        .map(|d| d.min(MAX_RETRY_AFTER))
}

/// The header's value when it is given exactly once.
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// `value` without the spaces and tabs around it.
fn trim(value: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

/// Delta-seconds, else an HTTP-date.
fn seconds_or_date(value: &HeaderValue, wall_now: SystemTime) -> Option<Duration> {
    let value = trim(value.as_bytes());
    if let Some(s) = whole(value) {
        return Some(Duration::from_secs(s));
    }
    // Not visible ASCII: neither form.
    let text = std::str::from_utf8(value).ok()?;
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(wall_now).unwrap_or(Duration::ZERO))
}

/// `1*DIGIT` as a number, saturating at `u64::MAX`.
fn whole(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// `1*DIGIT [ "." 1*DIGIT ]` milliseconds.
fn millis(value: &[u8]) -> Option<Duration> {
    let (int, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], Some(&value[dot + 1..])),
        None => (value, None),
    };
    let ms = whole(int)?;
    let mut nanos = 0u32;
    if let Some(frac) = frac {
        whole(frac)?;
        // A millisecond is 10^6 ns: six digits, padded with zeros.
        for i in 0..6 {
            let d = frac.get(i).map_or(0, |d| u32::from(d - b'0'));
            nanos = nanos * 10 + d;
        }
    }
    Some(Duration::from_millis(ms).saturating_add(Duration::from_nanos(u64::from(nanos))))
}
