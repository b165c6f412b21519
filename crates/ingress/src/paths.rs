//! Resource paths as clients write them. RFC 7644 names the endpoints
//! `/Users`, `/Groups`, ...; clients built against lenient servers (such
//! as Microsoft's reference implementation) send `/users`, a trailing
//! slash, or a doubled slash when an admin's base URL ends in `/`. Each
//! still names exactly one endpoint, so the path is rewritten to the
//! canonical one before routing. Resource ids and everything before the
//! endpoint (the tenant) are left as sent; a path naming no endpoint is
//! routed as sent and answers 404.

use axum::extract::Request;
use axum::http::uri::{PathAndQuery, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;

const SCIM_PREFIX: &str = "/scim/v2/";

/// The endpoints under a tenant's base URL, as routed.
const ENDPOINTS: &[&str] = &[
    "Users",
    "Groups",
    "Bulk",
    "ServiceProviderConfig",
    "ResourceTypes",
    "Schemas",
    "Me",
    "Status",
    ".search",
];

/// `routes` behind the rewrite. Middleware added with `Router::layer` runs
/// after routing, so the rewrite wraps the whole router as a fallback.
pub fn canonical_routing(routes: Router) -> Router {
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn(rewrite))
}

async fn rewrite(mut req: Request, next: Next) -> Response {
    if let Some(path) = canonical(req.uri().path()) {
        let with_query = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(pq) = PathAndQuery::try_from(with_query) {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    next.run(req).await
}

/// The canonical form of a SCIM path, when it differs from `path`.
fn canonical(path: &str) -> Option<String> {
    let rest = path.strip_prefix(SCIM_PREFIX)?;
    let (tenant, resource) = rest.split_once('/')?;
    let mut segments: Vec<&str> = resource.split('/').filter(|s| !s.is_empty()).collect();
    let first = segments.first_mut()?;
    if let Some(name) = ENDPOINTS.iter().find(|e| e.eq_ignore_ascii_case(first)) {
        *first = *name;
    }
    if let [kind, search] = segments.as_mut_slice() {
        if matches!(*kind, "Users" | "Groups") && search.eq_ignore_ascii_case(".search") {
            *search = ".search";
        }
    }
    let canonical = format!("{SCIM_PREFIX}{tenant}/{}", segments.join("/"));
    (canonical != path).then_some(canonical)
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn names_each_endpoint_as_routed() {
        let t = "/scim/v2/0190c0de-0000-7000-8000-000000000001";
        let cases = [
            // Already canonical: untouched.
            ("/Users", None),
            ("/Users/abc", None),
            ("/Users/.search", None),
            ("/ResourceTypes/User", None),
            // Case-insensitive endpoint names.
            ("/users", Some("/Users")),
            ("/USERS/abc", Some("/Users/abc")),
            ("/groups/.SEARCH", Some("/Groups/.search")),
            ("/bulk", Some("/Bulk")),
            ("/serviceproviderconfig", Some("/ServiceProviderConfig")),
            ("/resourcetypes/user", Some("/ResourceTypes/user")),
            ("/schemas", Some("/Schemas")),
            ("/.SEARCH", Some("/.search")),
            // Trailing and doubled slashes.
            ("/Users/", Some("/Users")),
            ("/Users/abc/", Some("/Users/abc")),
            ("//Users", Some("/Users")),
            ("//users//abc/", Some("/Users/abc")),
            // Ids keep their case; unknown endpoints stay unknown.
            ("/Users/ABC", None),
            ("/Things", None),
            ("/things/", Some("/things")),
        ];
        for (rest, want) in cases {
            let got = canonical(&format!("{t}{rest}"));
            assert_eq!(got, want.map(|w| format!("{t}{w}")), "{rest}");
        }
        // Outside a tenant's SCIM base URL nothing is rewritten.
        for other in [
            "/healthz",
            "/readyz/",
            "/scim/v2/",
            "/scim/v2/t",
            "/scim/v2/t/",
            "/SCIM/v2/t/users",
        ] {
            assert_eq!(canonical(other), None, "{other}");
        }
    }
}
