//! Reading and stamping the metadata of objects held as JSON.

use serde_json::{Map, Value};
use skiff_store::Object;

use crate::error::ApiError;

/// The object's `metadata`, created empty if absent.
pub fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = Value::Object(Map::new());
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A string field of the object's metadata.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// The object's labels, looked up one key at a time (for selectors).
pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get("labels")?.get(key)?.as_str()
}

/// The current time as Kubernetes writes it (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Stamps a new object's identity on its metadata: a fresh uid and the
/// creation time.
pub fn identify(meta: &mut Map<String, Value>) {
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert("creationTimestamp".into(), Value::String(now()));
}

/// `generateName` plus five random characters from upstream's alphabet
/// (no vowels, so no words; no look-alike digits).
pub fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Parses a stored object and sets its `resourceVersion` from the store's
/// revision (the store never keeps it inside the bytes).
pub fn from_stored(object: &Object) -> Result<Value, ApiError> {
    let mut value: Value = serde_json::from_slice(&object.value).map_err(|e| {
        ApiError::internal(format!("stored object {} is not JSON: {e}", object.key))
    })?;
    meta_mut(&mut value).insert(
        "resourceVersion".into(),
        Value::String(object.mod_revision.to_string()),
    );
    Ok(value)
}

/// The bytes to store: the object without its `resourceVersion`, with the
/// fields Go always writes.
pub fn to_stored(object: &Value) -> bytes::Bytes {
    let mut object = object.clone();
    meta_mut(&mut object).remove("resourceVersion");
    crate::wire::fill_zero(&mut object);
    encode(&object)
}

/// The bytes of an object ready to store as it is: filled, and without a
/// `resourceVersion` (a create's, which has just been prepared so).
pub fn encode(object: &Value) -> bytes::Bytes {
    let json = serde_json::to_vec(object).expect("a JSON value serializes");
    // Stored for as long as the object and its history live: without the
    // spare capacity the serializer grew the buffer by (up to half of it).
    bytes::Bytes::from(json.into_boxed_slice())
}

/// Whether anything but `metadata` and `status` differs: what bumps
/// `metadata.generation`.
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let rest = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !["metadata", "status", "kind", "apiVersion"].contains(&k.as_str())
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    rest(old) != rest(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_bytes_never_hold_the_resource_version() {
        let object = json!({"metadata": {"name": "a", "resourceVersion": "9"}, "data": {"k": "v"}});
        let stored = Object {
            key: "/k".into(),
            value: to_stored(&object),
            create_revision: 3,
            mod_revision: 12,
        };
        assert!(!String::from_utf8_lossy(&stored.value).contains("resourceVersion"));
        assert_eq!(
            from_stored(&stored).unwrap()["metadata"]["resourceVersion"],
            "12"
        );
    }

    #[test]
    fn only_spec_changes_count() {
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}, "status": {"x": 1}});
        let relabelled = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"replicas": 1}, "status": {"x": 2}});
        let scaled = json!({"metadata": {}, "spec": {"replicas": 2}});
        assert!(!spec_changed(&a, &relabelled));
        assert!(spec_changed(&a, &scaled));
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        let name = generated_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
        assert!(name[4..]
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert!(now().ends_with('Z'));
    }
}
