//! GET of one object and LIST of a collection, as a Table, as metadata or
//! whole.

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde_json::json;
use skiff_store::ListOptions;

use super::codec::json_response;
use super::{parse_revision, Api};
use crate::error::ApiError;
use crate::object::from_stored;

impl Api<'_> {
    pub(super) async fn get(&self, name: &str) -> Result<Response, ApiError> {
        let object = from_stored(&self.stored(name).await?)?;
        if crate::table::wanted(self.headers) {
            let metadata = json!({ "resourceVersion": object["metadata"]["resourceVersion"] });
            let table = crate::table::render(
                self.resource(),
                &[object],
                metadata,
                crate::table::include(self.query)?,
            );
            return Ok(json_response(StatusCode::OK, &table));
        }
        Ok(self.answer(StatusCode::OK, &object))
    }

    pub(super) async fn list(&self) -> Result<Response, ApiError> {
        let limit = match self.query.get("limit") {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            None => 0,
        };
        let continue_token = match self.query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => Some(decode_continue(token)?),
            None => None,
        };
        let revision = match self.query.get("resourceVersion").map(String::as_str) {
            None | Some("") | Some("0") => None,
            Some(rv) => {
                let rv = parse_revision(rv)?;
                let exact = self
                    .query
                    .get("resourceVersionMatch")
                    .is_some_and(|m| m == "Exact");
                // NotOlderThan (the default): the latest state is never older.
                if rv > self.state.store.current_revision() || exact {
                    Some(rv)
                } else {
                    None
                }
            }
        };
        let options = ListOptions {
            revision,
            limit,
            continue_token,
            filter: self.filter()?,
        };
        let list = self.list_stored(options).await?;
        let items = list
            .items
            .iter()
            .map(from_stored)
            .collect::<Result<Vec<_>, _>>()?;
        let mut metadata = json!({ "resourceVersion": list.revision.to_string() });
        if let Some(token) = &list.continue_token {
            metadata["continue"] = json!(base64::engine::general_purpose::STANDARD.encode(token));
        }
        if crate::table::wanted(self.headers) {
            let table = crate::table::render(
                self.resource(),
                &items,
                metadata,
                crate::table::include(self.query)?,
            );
            return Ok(json_response(StatusCode::OK, &table));
        }
        Ok(self.answer_list(metadata, items))
    }
}

fn decode_continue(token: &str) -> Result<String, ApiError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| ApiError::bad_request(format!("invalid continue token {token:?}")))?;
    String::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request(format!("invalid continue token {token:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_are_base64() {
        assert_eq!(decode_continue("MTI6L2E=").unwrap(), "12:/a");
        assert!(decode_continue("%%").is_err());
    }
}
