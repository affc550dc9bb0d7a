//! HTTP outcomes (feature `http`): every status code against the module's
//! table, `Retry-After` and `retry-after-ms` in every form and every
//! malformed one, error bodies, and transport errors. Arbitrary header
//! bytes, statuses and bodies never panic and always give a documented
//! result.

#![cfg(feature = "http")]

use std::io;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, StatusCode};
use modelfleet::health::{FailureKind, Outcome};
use modelfleet::http::{
    MAX_RETRY_AFTER, failure_kind, outcome, reads_body, retry_after, transport_failure,
};
use proptest::prelude::*;
use proptest::sample::select;

const RA: &str = "retry-after";
const RA_MS: &str = "retry-after-ms";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn at(unix_secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + secs(unix_secs)
}

/// Headers with each `(name, value)` appended (so a name may repeat).
fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for &(name, value) in pairs {
        h.append(name, HeaderValue::from_bytes(value).unwrap());
    }
    h
}

fn ra(pairs: &[(&'static str, &[u8])], now: SystemTime) -> Option<Duration> {
    retry_after(&headers(pairs), now)
}

/// The module's table, written again from its rows.
fn table(code: u16, retry: Option<Duration>) -> Option<FailureKind> {
    Some(match code {
        100..=399 => return None,
        400 | 413 | 422 => FailureKind::BadRequest,
        401 | 403 => FailureKind::AuthenticationError,
        404 => FailureKind::NotFound,
        408 => FailureKind::Timeout,
        429 => FailureKind::rate_limited(retry),
        503 | 529 => FailureKind::overloaded(retry),
        500..=599 => FailureKind::ServerError,
        _ => FailureKind::Other,
    })
}

/// Every status code HTTP's types can hold, with and without a
/// `Retry-After`, against the table.
#[test]
fn every_status_code_is_the_table() {
    let now = at(1_000_000);
    for retry in [None, Some(secs(7))] {
        let h = match retry {
            Some(_) => headers(&[(RA, b"7")]),
            None => HeaderMap::new(),
        };
        for code in 100..=999u16 {
            let status = StatusCode::from_u16(code).unwrap();
            let expected = table(code, retry);
            assert_eq!(failure_kind(status, &h, None, now), expected, "{code}");
            assert_eq!(
                failure_kind(status, &h, Some(b"{}"), now),
                expected,
                "{code}"
            );
            assert_eq!(
                reads_body(status),
                matches!(code, 400 | 413 | 422),
                "{code}"
            );
            let took = Duration::from_millis(u64::from(code));
            let expected_outcome = match expected {
                None => Outcome::success(took),
                Some(kind) => Outcome::failure(kind, Some(took)),
            };
            assert_eq!(
                outcome(status, &h, None, took, now),
                expected_outcome,
                "{code}"
            );
        }
    }
}

#[test]
fn delta_seconds_and_milliseconds() {
    let now = at(1_000_000);
    assert_eq!(ra(&[(RA, b"0")], now), Some(Duration::ZERO));
    assert_eq!(ra(&[(RA, b"120")], now), Some(secs(120)));
    assert_eq!(ra(&[(RA, b" \t120 ")], now), Some(secs(120)));
    assert_eq!(ra(&[(RA, b"000120")], now), Some(secs(120)));
    assert_eq!(
        ra(&[(RA_MS, b"1500")], now),
        Some(Duration::from_millis(1_500))
    );
    assert_eq!(
        ra(&[(RA_MS, b"12.5")], now),
        Some(Duration::from_micros(12_500))
    );
    assert_eq!(
        ra(&[(RA_MS, b"0.000001")], now),
        Some(Duration::from_nanos(1))
    );
    assert_eq!(
        ra(&[(RA_MS, b"0.0000019")], now),
        Some(Duration::from_nanos(1)),
        "digits past a nanosecond are dropped"
    );
    // retry-after-ms wins when both parse, and only then.
    assert_eq!(
        ra(&[(RA, b"120"), (RA_MS, b"250")], now),
        Some(Duration::from_millis(250))
    );
    assert_eq!(ra(&[(RA, b"120"), (RA_MS, b"-250")], now), Some(secs(120)));
    assert_eq!(
        ra(&[(RA, b"soon"), (RA_MS, b"250")], now),
        Some(Duration::from_millis(250))
    );
}

#[test]
fn malformed_values_give_none() {
    let now = at(1_000_000);
    for bad in [
        &b""[..],
        b" ",
        b"-1",
        b"+1",
        b"1.5",
        b"1e3",
        b"0x10",
        b"1 2",
        b"120s",
        b"soon",
        b"\xff\xfe",
        b"12\x80",
        b"Sun, 06 Nov 1994 08:49:37 XYZ",
        b"Mon, 06 Nov 1994 08:49:37 GMT", // wrong weekday
        b"Sun, 32 Nov 1994 08:49:37 GMT",
        b"Sun, 06 Nov 1994 25:49:37 GMT",
        b"Sun, 06 Nov 1969 08:49:37 GMT",
    ] {
        assert_eq!(
            ra(&[(RA, bad)], now),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    for bad in [
        &b""[..],
        b"-5",
        b"+5",
        b"1.",
        b".5",
        b"1.2.3",
        b"5ms",
        b"\xff",
    ] {
        assert_eq!(
            ra(&[(RA_MS, bad)], now),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// A singleton header given twice says two things; neither is trusted,
/// and the other header is used.
#[test]
fn a_header_given_twice_is_ignored() {
    let now = at(1_000_000);
    assert_eq!(ra(&[(RA, b"5"), (RA, b"5")], now), None);
    assert_eq!(ra(&[(RA, b"5"), (RA, b"50")], now), None);
    assert_eq!(
        ra(&[(RA_MS, b"100"), (RA_MS, b"200"), (RA, b"3")], now),
        Some(secs(3))
    );
    let h = headers(&[(RA, b"5"), (RA, b"6")]);
    assert_eq!(
        failure_kind(StatusCode::TOO_MANY_REQUESTS, &h, None, now),
        Some(FailureKind::rate_limited(None))
    );
}

#[test]
fn http_dates_in_all_three_forms() {
    // Sun, 06 Nov 1994 08:49:37 GMT.
    let date = 784_111_777;
    let now = at(date - 90);
    for form in [
        &b"Sun, 06 Nov 1994 08:49:37 GMT"[..],
        b"Sunday, 06-Nov-94 08:49:37 GMT",
        b"Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(
            ra(&[(RA, form)], now),
            Some(secs(90)),
            "{}",
            String::from_utf8_lossy(form)
        );
    }
    // Sub-second wall times: the delay is exact, not rounded.
    let now = at(date - 2) + Duration::from_millis(250);
    assert_eq!(
        ra(&[(RA, b"Sun, 06 Nov 1994 08:49:37 GMT")], now),
        Some(Duration::from_millis(1_750))
    );
}

#[test]
fn past_dates_are_now_and_far_ones_are_capped() {
    let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
    assert_eq!(ra(&[(RA, date)], at(784_111_777)), Some(Duration::ZERO));
    assert_eq!(ra(&[(RA, date)], at(784_111_778)), Some(Duration::ZERO));
    assert_eq!(ra(&[(RA, date)], at(2_000_000_000)), Some(Duration::ZERO));
    let far = b"Fri, 31 Dec 9999 23:59:59 GMT";
    assert_eq!(ra(&[(RA, far)], at(0)), Some(MAX_RETRY_AFTER));
    assert_eq!(
        ra(&[(RA, b"Thu, 01 Jan 1970 00:00:00 GMT")], at(0)),
        Some(Duration::ZERO)
    );
    // A wall clock before 1970 (a broken clock) still gives a delay.
    let before = SystemTime::UNIX_EPOCH - secs(10);
    assert_eq!(
        ra(&[(RA, b"Thu, 01 Jan 1970 00:00:05 GMT")], before),
        Some(secs(15))
    );
    // Huge numbers saturate, then cap.
    let huge = "9".repeat(4_000);
    assert_eq!(ra(&[(RA, huge.as_bytes())], at(0)), Some(MAX_RETRY_AFTER));
    assert_eq!(
        ra(&[(RA_MS, huge.as_bytes())], at(0)),
        Some(MAX_RETRY_AFTER)
    );
    let huge_frac = format!("{huge}.{huge}");
    assert_eq!(
        ra(&[(RA_MS, huge_frac.as_bytes())], at(0)),
        Some(MAX_RETRY_AFTER)
    );
    assert_eq!(ra(&[(RA, b"86401")], at(0)), Some(MAX_RETRY_AFTER));
    assert_eq!(ra(&[(RA, b"86400")], at(0)), Some(MAX_RETRY_AFTER));
    assert_eq!(ra(&[(RA, b"86399")], at(0)), Some(secs(86_399)));
}

/// Bytes a header value may hold: visible ASCII, space, tab and obs-text.
fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        6 => select(b"0123456789".to_vec()),
        2 => select(b" \t.-+,:GMTSunNov".to_vec()),
        2 => 0x20u8..0x7f,
        1 => 0x80u8..=0xff,
        1 => Just(b'\t'),
    ];
    prop::collection::vec(byte, 0..40)
}

/// A `Retry-After` value: arbitrary bytes, numbers of any size, or dates
/// from 1970 to 9999 in IMF-fixdate.
fn retry_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        value_bytes(),
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        (0u64..200_000).prop_map(|n| n.to_string().into_bytes()),
        "[0-9]{20,60}".prop_map(String::into_bytes),
        (0u64..253_402_300_800).prop_map(|t| httpdate::fmt_http_date(at(t)).into_bytes()),
    ]
}

fn wall_now() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        (0u64..253_402_300_800).prop_map(at),
        (0u64..1_000_000_000_000).prop_map(|ms| SystemTime::UNIX_EPOCH - Duration::from_millis(ms)),
        Just(SystemTime::UNIX_EPOCH),
    ]
}

fn name() -> impl Strategy<Value = &'static str> {
    select(vec![RA, RA_MS, "x-other"])
}

fn status() -> impl Strategy<Value = StatusCode> {
    prop_oneof![
        select(vec![200u16, 301, 400, 408, 413, 422, 429, 500, 503, 529]),
        100u16..=999,
    ]
    .prop_map(|c| StatusCode::from_u16(c).unwrap())
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..200))
}

/// `(phrase, kind)` from the module's table.
const PHRASES: &[(&str, FailureKind)] = &[
    (
        "context_length_exceeded",
        FailureKind::ContextWindowExceeded,
    ),
    ("maximum context length", FailureKind::ContextWindowExceeded),
    ("prompt is too long", FailureKind::ContextWindowExceeded),
    ("content_filter", FailureKind::ContentFiltered),
    ("content_policy_violation", FailureKind::ContentFiltered),
    ("ResponsibleAIPolicyViolation", FailureKind::ContentFiltered),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Any headers, status, body and time: no panic; a delay only on 429,
    /// 503 and 529, the same one `retry_after` gives, never above the cap;
    /// every other status gives the table's kind whatever the headers.
    #[test]
    fn arbitrary_headers_never_panic_and_follow_the_table(
        fields in prop::collection::vec((name(), retry_value()), 0..4),
        status in status(),
        body in body(),
        now in wall_now(),
    ) {
        let mut h = HeaderMap::new();
        for (name, value) in &fields {
            h.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        let delay = retry_after(&h, now);
        prop_assert!(delay.is_none_or(|d| d <= MAX_RETRY_AFTER));
        let kind = failure_kind(status, &h, body.as_deref(), now);
        let code = status.as_u16();
        if reads_body(status) {
            prop_assert!(matches!(
                kind,
                Some(FailureKind::BadRequest | FailureKind::ContextWindowExceeded | FailureKind::ContentFiltered)
            ));
        } else {
            prop_assert_eq!(kind, table(code, delay));
        }
        prop_assert_eq!(kind.and_then(FailureKind::retry_after), match code {
            429 | 503 | 529 => delay,
            _ => None,
        });
    }

    /// Delta-seconds of any size: the number, capped.
    #[test]
    fn delta_seconds_are_the_number_capped(n: u64, pad in 0usize..3, now in wall_now()) {
        let text = format!("{}{n}", "0".repeat(pad));
        prop_assert_eq!(ra(&[(RA, text.as_bytes())], now), Some(secs(n).min(MAX_RETRY_AFTER)));
        let ms = Duration::from_millis(n).min(MAX_RETRY_AFTER);
        prop_assert_eq!(ra(&[(RA_MS, text.as_bytes()), (RA, b"1")], now), Some(ms));
    }

    /// A date from 1970 to 9999 against any wall time: the time until it,
    /// zero once past, capped.
    #[test]
    fn dates_are_the_time_until_them(t in 0u64..253_402_300_800, now in wall_now()) {
        let date = at(t);
        let text = httpdate::fmt_http_date(date);
        let expected = date.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER);
        prop_assert_eq!(ra(&[(RA, text.as_bytes())], now), Some(expected));
        // Near the wall time, exactly: the boundary of "past".
        let near = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let text = httpdate::fmt_http_date(at(near));
        let expected = at(near).duration_since(now).unwrap_or(Duration::ZERO);
        prop_assert_eq!(ra(&[(RA, text.as_bytes())], now), Some(expected.min(MAX_RETRY_AFTER)));
    }

    /// A phrase anywhere in an error body, in any case, gives its kind on
    /// 400, 413 and 422, and changes nothing on any other status.
    #[test]
    fn body_phrases_in_any_case(
        (phrase, kind) in select(PHRASES.to_vec()),
        before in prop::collection::vec(any::<u8>(), 0..60),
        after in prop::collection::vec(any::<u8>(), 0..60),
        upper in prop::collection::vec(any::<bool>(), 40),
        status in status(),
    ) {
        let cased = phrase.bytes().zip(&upper).map(|(b, &u)| if u { b.to_ascii_uppercase() } else { b.to_ascii_lowercase() });
        let body: Vec<u8> = before.iter().copied().chain(cased).chain(after.iter().copied()).collect();
        let now = at(0);
        let h = HeaderMap::new();
        let got = failure_kind(status, &h, Some(&body), now);
        if reads_body(status) {
            // Random bytes around the phrase may spell a context-window
            // phrase too, which wins; they cannot undo this one.
            prop_assert!(got == Some(kind) || got == Some(FailureKind::ContextWindowExceeded));
        } else {
            prop_assert_eq!(got, failure_kind(status, &h, None, now));
        }
    }
}

#[test]
fn a_body_without_a_phrase_is_a_bad_request() {
    let now = at(0);
    let h = HeaderMap::new();
    for status in [
        StatusCode::BAD_REQUEST,
        StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNPROCESSABLE_ENTITY,
    ] {
        for body in [
            None,
            Some(&b""[..]),
            Some(b"{\"error\":\"bad json\"}"),
            Some(b"\xff\x00context"),
        ] {
            assert_eq!(
                failure_kind(status, &h, body, now),
                Some(FailureKind::BadRequest),
                "{status} {body:?}"
            );
        }
    }
    assert_eq!(
        failure_kind(
            StatusCode::PAYLOAD_TOO_LARGE,
            &h,
            Some(b"prompt is too long"),
            now
        ),
        Some(FailureKind::ContextWindowExceeded)
    );
}

/// Through a real selector: a 503 with `Retry-After` cools the deployment
/// until then, and a 529 with `retry-after-ms` too.
#[test]
fn an_overloaded_response_cools_until_its_retry_after() {
    use modelfleet::health::Report;
    use modelfleet::{Deployment, Error, Registry, Request, Selector};

    let reg: Registry = [Deployment::builder("anthropic", "claude").build().unwrap()]
        .into_iter()
        .collect();
    let s = Selector::builder(&reg).build();
    let now = at(1_700_000_000);
    for (status, h, until) in [
        (
            StatusCode::SERVICE_UNAVAILABLE,
            headers(&[(RA, b"30")]),
            secs(40),
        ),
        (
            StatusCode::from_u16(529).unwrap(),
            headers(&[(RA_MS, b"5000")]),
            secs(45),
        ),
    ] {
        let t = until - if status == 529 { secs(5) } else { secs(30) };
        let pick = s.select(&Request::new("claude").at(t)).unwrap();
        let o = outcome(status, &h, None, Duration::ZERO, now);
        assert!(matches!(
            o,
            Outcome::Failure {
                kind: FailureKind::Overloaded { .. },
                ..
            }
        ));
        pick.complete(Report::new(t, o));
        match s.select(&Request::new("claude").at(until - Duration::from_nanos(1))) {
            Err(Error::Unavailable { retry_at, .. }) => assert_eq!(retry_at, Some(until)),
            other => panic!("{other:?}"),
        }
        assert!(s.select(&Request::new("claude").at(until)).is_ok());
    }
}

#[test]
fn transport_errors() {
    assert_eq!(
        transport_failure(&io::Error::from(io::ErrorKind::TimedOut)),
        FailureKind::Timeout
    );
    assert_eq!(
        transport_failure(&io::Error::from(io::ErrorKind::ConnectionRefused)),
        FailureKind::ConnectionError
    );
    assert_eq!(
        transport_failure(&io::Error::other(io::Error::from(
            io::ErrorKind::BrokenPipe
        ))),
        FailureKind::ConnectionError
    );
    assert_eq!(
        transport_failure(&io::Error::from(io::ErrorKind::InvalidData)),
        FailureKind::Other
    );
    let parse_error = "x".parse::<u8>().unwrap_err();
    assert_eq!(transport_failure(&parse_error), FailureKind::Other);
    // Every failure a transport error gives: retryable but `other`.
    for kind in [FailureKind::Timeout, FailureKind::ConnectionError] {
        assert!(kind.is_retryable());
    }
    assert!(!FailureKind::Other.is_retryable());
}
