//! How the modelfleet [`Request`] of an HTTP request is made: the
//! [`MakeRequest`] hook, and [`FromExtension`], the default.

use crate::Request;

/// Makes the modelfleet [`Request`] (model, filters, fallbacks, token
/// estimate) that picks the deployments for an HTTP request.
///
/// Any `Fn(&http::Request<B>) -> Result<modelfleet::Request, E>` is one,
/// with `E` turned into [`Error::Request`](super::Error::Request); the
/// default, [`FromExtension`], takes the request from the HTTP request's
/// extensions. The layer then sets the [affinity](Request::affinity) from
/// its affinity header, when one is configured and present.
///
/// ```
/// use modelfleet::Request;
/// use modelfleet::tower::MakeRequest;
///
/// // The model from a header, e.g. set by an earlier layer that read the body.
/// let by_header = |req: &http::Request<()>| -> Result<Request, &'static str> {
///     let model = req.headers().get("x-model").ok_or("no x-model header")?;
///     Ok(Request::new(model.to_str().map_err(|_| "x-model is not text")?))
/// };
/// let http = http::Request::builder().header("x-model", "gpt-4").body(())?;
/// assert_eq!(by_header.make_request(&http).unwrap().model(), "gpt-4");
/// # Ok::<(), http::Error>(())
/// ```
pub trait MakeRequest<B> {
    /// Why an HTTP request has no modelfleet request.
    type Error: Into<super::BoxError>;

    /// The modelfleet request for `request`.
    ///
    /// # Errors
    ///
    /// When the HTTP request cannot be routed (no model in it, say): the
    /// layer answers with [`Error::Request`](super::Error::Request) and
    /// sends nothing upstream.
    fn make_request(&self, request: &http::Request<B>) -> Result<Request, Self::Error>;
}

impl<B, F, E> MakeRequest<B> for F
where
    F: Fn(&http::Request<B>) -> Result<Request, E>,
    E: Into<super::BoxError>,
{
    type Error = E;

    fn make_request(&self, request: &http::Request<B>) -> Result<Request, E> {
        self(request)
    }
}

/// The default [`MakeRequest`]: a clone of the [`Request`] in the HTTP
/// request's extensions, put there by the caller or an earlier layer.
///
/// ```
/// use modelfleet::Request;
/// use modelfleet::tower::{FromExtension, MakeRequest};
///
/// let mut http = http::Request::new(());
/// assert!(FromExtension.make_request(&http).is_err());
/// http.extensions_mut().insert(Request::new("gpt-4"));
/// assert_eq!(FromExtension.make_request(&http)?.model(), "gpt-4");
/// # Ok::<(), modelfleet::tower::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct FromExtension;

impl<B> MakeRequest<B> for FromExtension {
    type Error = super::Error;

    /// # Errors
    ///
    /// [`Error::MissingRequest`](super::Error::MissingRequest) when the
    /// extensions hold no [`Request`].
    fn make_request(&self, request: &http::Request<B>) -> Result<Request, super::Error> {
        request
            .extensions()
            .get::<Request>()
            .cloned()
            .ok_or(super::Error::MissingRequest)
    }
}
