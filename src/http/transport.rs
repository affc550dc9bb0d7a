//! Transport errors (no response at all) as failure kinds.

use std::error::Error;
use std::fmt::{self, Write as _};
use std::io;

use crate::health::FailureKind;

/// How many errors of a chain are looked at: a chain is a few errors
/// deep, and a cycle (a `source` that leads back) must not loop forever.
const MAX_DEPTH: usize = 32;

/// What a request that got no response says about the deployment:
/// [`Timeout`](FailureKind::Timeout),
/// [`ConnectionError`](FailureKind::ConnectionError) or
/// [`Other`](FailureKind::Other).
///
/// Walks `error` and its [`source`](Error::source) chain (an
/// [`io::Error`]'s wrapped error included) from the outside in; the first
/// error that names a timeout or a connection failure decides:
///
/// - an [`io::Error`] of kind [`TimedOut`](io::ErrorKind::TimedOut), or an
///   error whose type name ends with `Elapsed`, `Timeout`, `TimedOut` or
///   `TimeoutError` (tokio's and tower's `Elapsed`, reqwest's `TimedOut`) →
///   `Timeout`;
/// - an [`io::Error`] of kind `ConnectionRefused`, `ConnectionReset`,
///   `ConnectionAborted`, `NotConnected`, `AddrNotAvailable` or
///   `BrokenPipe`, or an error whose type name ends with `ConnectError`
///   (hyper-util's connector: DNS, TCP, TLS) → `ConnectionError`;
/// - nothing named in the first 32 errors of the chain → `Other`.
///
/// The type name is read from the start of the error's `Debug` text (the
/// type, or the variant of an enum, for a derived `Debug`), the only place
/// a `dyn Error` shows it; it is never kept or printed. O(chain length ×
/// `Debug` text length); allocates nothing.
///
/// ```
/// use std::io;
/// use modelfleet::health::FailureKind;
/// use modelfleet::http::transport_failure;
///
/// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
/// assert_eq!(transport_failure(&refused), FailureKind::ConnectionError);
///
/// // A timeout wrapped in another error.
/// let wrapped = io::Error::other(io::Error::from(io::ErrorKind::TimedOut));
/// assert_eq!(transport_failure(&wrapped), FailureKind::Timeout);
///
/// #[derive(Debug)]
/// struct Elapsed;
/// impl std::fmt::Display for Elapsed {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("deadline has elapsed")
///     }
/// }
/// impl std::error::Error for Elapsed {}
/// assert_eq!(transport_failure(&Elapsed), FailureKind::Timeout);
///
/// assert_eq!(transport_failure(&io::Error::other("tls handshake")), FailureKind::Other);
/// ```
#[must_use]
pub fn transport_failure(error: &(dyn Error + 'static)) -> FailureKind {
    let mut next = Some(error);
    for _ in 0..MAX_DEPTH {
        let Some(e) = next else { break };
        if let Some(kind) = classify(e) {
            return kind;
        }
        next = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            // `io::Error::source` skips the error it wraps (it returns that
            // error's source), so the walk goes through the wrapped one.
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => e.source(),
        };
    }
    FailureKind::Other
}

/// What `e` itself names, if anything.
fn classify(e: &(dyn Error + 'static)) -> Option<FailureKind> {
    if let Some(io) = e.downcast_ref::<io::Error>() {
        return io_kind(io.kind());
    }
    let name = TypeName::of(e);
    let name = name.as_bytes();
    if ["Elapsed", "Timeout", "TimedOut", "TimeoutError"]
        .iter()
        .any(|s| name.ends_with(s.as_bytes()))
    {
        Some(FailureKind::Timeout)
    } else if name.ends_with(b"ConnectError") {
        Some(FailureKind::ConnectionError)
    } else {
        None
    }
}

fn io_kind(kind: io::ErrorKind) -> Option<FailureKind> {
    use io::ErrorKind as K;
    match kind {
        K::TimedOut => Some(FailureKind::Timeout),
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::AddrNotAvailable
        | K::BrokenPipe => Some(FailureKind::ConnectionError),
        _ => None,
    }
}

/// The last path segment of the identifier a `Debug` text starts with
/// (`hyper_util::client::legacy::connect::ConnectError("dns error", …)` →
/// `ConnectError`), kept on the stack. A segment longer than the buffer
/// names nothing.
struct TypeName {
    buf: [u8; 64],
    len: usize,
    /// The identifier has ended (or overflowed); the rest is ignored.
    done: bool,
    overflowed: bool,
}

impl TypeName {
    fn of(e: &dyn Error) -> Self {
        let mut name = TypeName {
            buf: [0; 64],
            len: 0,
            done: false,
            overflowed: false,
        };
        // The sink never fails; a `Debug` that fails on its own names nothing
        // more than what it wrote.
        let _ = write!(name, "{e:?}");
        name
    }

    fn as_bytes(&self) -> &[u8] {
        if self.overflowed {
            &[]
        } else {
            &self.buf[..self.len]
        }
    }
}

impl fmt::Write for TypeName {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if self.done {
                break;
            }
            match b {
                b':' => self.len = 0,
                b if b.is_ascii_alphanumeric() || b == b'_' => {
                    if self.len == self.buf.len() {
                        self.overflowed = true;
                        self.done = true;
                    } else {
                        self.buf[self.len] = b;
                        self.len += 1;
                    }
                }
                _ => self.done = true,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(&'static str, Option<Box<dyn Error + Send + Sync>>);

    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[derive(Debug)]
    struct ConnectError(&'static str, io::Error);

    impl fmt::Display for ConnectError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for ConnectError {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn io_kinds() {
        use io::ErrorKind as K;
        for k in [
            K::ConnectionRefused,
            K::ConnectionReset,
            K::ConnectionAborted,
            K::NotConnected,
            K::AddrNotAvailable,
            K::BrokenPipe,
        ] {
            assert_eq!(
                transport_failure(&io::Error::from(k)),
                FailureKind::ConnectionError,
                "{k:?}"
            );
        }
        assert_eq!(
            transport_failure(&io::Error::from(K::TimedOut)),
            FailureKind::Timeout
        );
        for k in [
            K::Other,
            K::InvalidData,
            K::UnexpectedEof,
            K::PermissionDenied,
        ] {
            assert_eq!(
                transport_failure(&io::Error::from(k)),
                FailureKind::Other,
                "{k:?}"
            );
        }
    }

    #[test]
    fn walks_the_chain_from_the_outside_in() {
        let deep = Wrap(
            "client error",
            Some(Box::new(Wrap(
                "request failed",
                Some(Box::new(io::Error::from(io::ErrorKind::ConnectionReset))),
            ))),
        );
        assert_eq!(transport_failure(&deep), FailureKind::ConnectionError);
        // hyper-util's shape: a connect error around an io error; the
        // outer one decides (a connect timeout is a connection failure).
        let connect = Wrap(
            "client error (Connect)",
            Some(Box::new(ConnectError(
                "tcp connect error",
                io::Error::from(io::ErrorKind::TimedOut),
            ))),
        );
        assert_eq!(transport_failure(&connect), FailureKind::ConnectionError);
        let dns = ConnectError("dns error", io::Error::other("no such host"));
        assert_eq!(transport_failure(&dns), FailureKind::ConnectionError);
        // An io::Error wrapping a named timeout.
        #[derive(Debug)]
        struct TimedOut;
        impl fmt::Display for TimedOut {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("operation timed out")
            }
        }
        impl Error for TimedOut {}
        let io_wrapped = io::Error::other(Wrap("hyper", Some(Box::new(TimedOut))));
        assert_eq!(transport_failure(&io_wrapped), FailureKind::Timeout);
        assert_eq!(
            transport_failure(&Wrap("x", None)),
            FailureKind::Other,
            "nothing named"
        );
    }

    #[test]
    fn type_names() {
        #[derive(Debug)]
        enum ClientError {
            Timeout,
            Protocol,
        }
        impl fmt::Display for ClientError {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{self:?}")
            }
        }
        impl Error for ClientError {}
        assert_eq!(
            transport_failure(&ClientError::Timeout),
            FailureKind::Timeout
        );
        assert_eq!(
            transport_failure(&ClientError::Protocol),
            FailureKind::Other
        );
        // A name that only contains a timeout word names nothing.
        #[derive(Debug)]
        struct TimeoutConfigInvalid;
        impl fmt::Display for TimeoutConfigInvalid {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bad")
            }
        }
        impl Error for TimeoutConfigInvalid {}
        assert_eq!(transport_failure(&TimeoutConfigInvalid), FailureKind::Other);
        // A string error's Debug is a quoted string: no name.
        let text: Box<dyn Error + Send + Sync> = "Elapsed".into();
        assert_eq!(transport_failure(&*text), FailureKind::Other);
    }

    #[test]
    fn a_long_name_names_nothing() {
        #[derive(Debug)]
        struct AVeryLongTypeNameThatGoesOnAndOnPastTheBufferOfSixtyFourBytesElapsed;
        impl fmt::Display for AVeryLongTypeNameThatGoesOnAndOnPastTheBufferOfSixtyFourBytesElapsed {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("long")
            }
        }
        impl Error for AVeryLongTypeNameThatGoesOnAndOnPastTheBufferOfSixtyFourBytesElapsed {}
        assert_eq!(
            transport_failure(
                &AVeryLongTypeNameThatGoesOnAndOnPastTheBufferOfSixtyFourBytesElapsed
            ),
            FailureKind::Other
        );
    }

    /// A chain that leads back to itself ends after `MAX_DEPTH` errors.
    #[test]
    fn a_cycle_ends() {
        #[derive(Debug)]
        struct Loop;
        impl fmt::Display for Loop {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("loop")
            }
        }
        impl Error for Loop {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&Loop)
            }
        }
        assert_eq!(transport_failure(&Loop), FailureKind::Other);
    }
}
