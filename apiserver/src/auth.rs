//! Authentication: the admin bearer token. Health and version answer
//! anonymously, as upstream's default RBAC lets them.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

const ANONYMOUS_PATHS: [&str; 4] = ["/healthz", "/livez", "/readyz", "/version"];

/// Compares without leaking, through timing, how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who sent a request: the admin when it carries the admin token (or when
/// no token is set), else the anonymous user.
pub fn user(state: &AppState, headers: &axum::http::HeaderMap) -> &'static str {
    let Some(token) = &state.token else {
        return ADMIN;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if presented.is_some_and(|p| same(p.as_bytes(), token.as_bytes())) {
        ADMIN
    } else {
        ANONYMOUS
    }
}

/// The admin user's name.
pub const ADMIN: &str = "skiff-admin";
/// The anonymous user's name, as upstream calls it.
pub const ANONYMOUS: &str = "system:anonymous";

/// Refuses requests without the admin token with 401 (when one is set).
pub async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let open_path = ANONYMOUS_PATHS.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    if open_path || user(&state, request.headers()) == ADMIN {
        return next.run(request).await;
    }
    ApiError {
        code: StatusCode::UNAUTHORIZED,
        reason: "Unauthorized",
        message: "Unauthorized".into(),
        details: None,
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn comparison_is_exact() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"abcd"));
    }
}
