//! Authentication: the admin bearer token, and service-account tokens
//! (JWTs this server signed, [`crate::tokens`], whose account and bound
//! object still exist). Health and version answer anonymously, as
//! upstream's default RBAC lets them. Who a request is from goes with it
//! (and with its response, for the audit trail) as a [`User`].
//!
//! Every authenticated user may do everything until RBAC is served.

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

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// The admin (the admin token, or a server without one).
    Admin,
    /// A service account, by its token.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Nobody known.
    Anonymous,
}

impl User {
    /// The user name, as upstream's authenticators give it.
    pub fn name(&self) -> String {
        match self {
            User::Admin => ADMIN.to_owned(),
            User::ServiceAccount { namespace, name } => crate::tokens::user_name(namespace, name),
            User::Anonymous => ANONYMOUS.to_owned(),
        }
    }
}

/// Who sent a request with these headers.
pub async fn user(state: &AppState, headers: &axum::http::HeaderMap) -> User {
    let Some(token) = &state.token else {
        return User::Admin;
    };
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return User::Anonymous;
    };
    if same(presented.as_bytes(), token.as_bytes()) {
        return User::Admin;
    }
    let Some(claims) = state.tokens.as_ref().and_then(|t| t.verify(presented)) else {
        return User::Anonymous;
    };
    match crate::service_accounts::still_valid(state, &claims).await {
        true => User::ServiceAccount {
            namespace: claims.kubernetes.namespace,
            name: claims.kubernetes.serviceaccount.name,
        },
        false => User::Anonymous,
    }
}

/// The admin user's name.
pub const ADMIN: &str = "skiff-admin";
/// The anonymous user's name, as upstream calls it.
pub const ANONYMOUS: &str = "system:anonymous";

/// Refuses anonymous requests with 401 (when a token is set) but to the
/// open paths; marks the request and its response with its [`User`].
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let open_path = ANONYMOUS_PATHS.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    let user = user(&state, request.headers()).await;
    let mut response = match (open_path, &user) {
        (false, User::Anonymous) => ApiError {
            code: StatusCode::UNAUTHORIZED,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
            details: None,
        }
        .into_response(),
        _ => {
            request.extensions_mut().insert(user.clone());
            next.run(request).await
        }
    };
    response.extensions_mut().insert(user);
    response
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
