//! The proxy's own responses: short pages that say what went wrong for
//! the client, naming no service, replica, node or address.

use super::body::ProxyBody;
use http::{header, HeaderValue, Response, StatusCode};

/// The page for `status`, with a line of what it means to a visitor.
pub fn page(status: StatusCode) -> Response<ProxyBody> {
    let explanation = match status {
        StatusCode::NOT_FOUND => "No site is served at this address.",
        StatusCode::BAD_REQUEST => "The request could not be understood.",
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is larger than this site accepts.",
        StatusCode::BAD_GATEWAY => "The site did not answer. Try again in a moment.",
        StatusCode::SERVICE_UNAVAILABLE => {
            "The site has nothing running to answer right now. Try again in a moment."
        }
        StatusCode::GATEWAY_TIMEOUT => "The site took too long to answer.",
        StatusCode::PERMANENT_REDIRECT => "This site is served over HTTPS.",
        _ => "The request could not be served.",
    };
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<!doctype html>\n<html><head><title>{code} {reason}</title></head>\n\
         <body><h1>{code} {reason}</h1><p>{explanation}</p></body></html>\n"
    );
    let mut response = Response::new(ProxyBody::own(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
