//! ConfigMaps, Secrets and Namespaces, as upstream's `ValidateConfigMap`,
//! `ValidateSecret` and `ValidateNamespace` check them: config keys, the
//! 1 MiB size limit, the keys each Secret type requires, finalizer names.

use base64::Engine;
use serde_json::Value;

use super::{quote, Check, Problem};
use crate::validation::{config_key_errors, qualified_name_errors};

/// Upstream's `MaxSecretSize`, which ConfigMaps share.
const MAX_SIZE: usize = 1024 * 1024;

/// The decoded length of a base64 `[]byte` field.
fn decoded_len(value: &Value) -> usize {
    let text = value.as_str().unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_or(text.len() * 3 / 4, |bytes| bytes.len())
}

/// Config keys of a map at `field`; answers the keys and the total size
/// of their values (`decode` for `[]byte` maps).
fn keys<'a>(check: &mut Check, map: &'a Value, field: &str, bytes: bool) -> (Vec<&'a str>, usize) {
    let mut size = 0;
    let mut keys = Vec::new();
    for (key, value) in check.map(map, field).into_iter().flatten() {
        let at = format!("{field}[{key}]");
        check.each_invalid(&at, &quote(key), config_key_errors(key));
        size += if bytes {
            decoded_len(value)
        } else {
            check.text(value, &at).len()
        };
        keys.push(key.as_str());
    }
    (keys, size)
}

/// The problems of a ConfigMap.
pub fn config_map(object: &Value) -> Vec<Problem> {
    let mut check = Check::default();
    let (data, data_size) = keys(&mut check, &object["data"], "data", false);
    let (binary, binary_size) = keys(&mut check, &object["binaryData"], "binaryData", true);
    for key in data.iter().filter(|k| binary.contains(k)) {
        check.invalid(
            &format!("data[{key}]"),
            &quote(key),
            "duplicate of key present in binaryData",
        );
    }
    if data_size + binary_size > MAX_SIZE {
        check.too_long("", MAX_SIZE);
    }
    check.problems
}

/// The problems of a Secret (its `stringData` counts as `data`, as
/// upstream merges the two before validating).
pub fn secret(object: &Value) -> Vec<Problem> {
    let mut check = Check::default();
    let (mut present, bytes) = keys(&mut check, &object["data"], "data", true);
    let (strings, text) = keys(&mut check, &object["stringData"], "data", false);
    present.extend(strings);
    if bytes + text > MAX_SIZE {
        check.too_long("data", MAX_SIZE);
    }
    let has = |key: &str| present.contains(&key);
    let require = |check: &mut Check, key: &str| check.required(&format!("data[{key}]"), "");
    match check.text(&object["type"], "type") {
        "kubernetes.io/service-account-token" => {
            let key = "kubernetes.io/service-account.name";
            let name = &object["metadata"]["annotations"][key];
            if name.as_str().is_none_or(str::is_empty) {
                check.required(&format!("metadata.annotations[{key}]"), "");
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => require(&mut check, ".dockercfg"),
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            require(&mut check, ".dockerconfigjson")
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            require(&mut check, "username");
            require(&mut check, "password");
        }
        "kubernetes.io/ssh-auth" => {
            let key = &object["data"]["ssh-privatekey"];
            let string_key = &object["stringData"]["ssh-privatekey"];
            if decoded_len(key) == 0 && string_key.as_str().is_none_or(str::is_empty) {
                require(&mut check, "ssh-privatekey");
            }
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    require(&mut check, key);
                }
            }
        }
        _ => {}
    }
    check.problems
}

/// The problems of a Namespace: its finalizers' names.
pub fn namespace(object: &Value) -> Vec<Problem> {
    let mut check = Check::default();
    let field = "spec.finalizers";
    for finalizer in check.list(&object["spec"]["finalizers"], field) {
        let name = check.text(finalizer, field);
        check.each_invalid(field, &quote(name), qualified_name_errors(name));
        let standard = ["kubernetes", "orphan", "foregroundDeletion"];
        if !name.contains('/') && !standard.contains(&name) {
            check.invalid(
                field,
                &quote(name),
                "name is neither a standard finalizer name nor is it fully qualified",
            );
        }
    }
    check.problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(problems: Vec<Problem>) -> Vec<String> {
        problems
            .into_iter()
            .map(|(_, field, message)| format!("{field}: {message}"))
            .collect()
    }

    #[test]
    fn config_keys_and_sizes() {
        assert!(config_map(&json!({"data": {"app.conf": "x", "KEY_1": "y"}})).is_empty());
        assert_eq!(
            messages(config_map(&json!({"data": {"a/b": "x", "k": "1"}, "binaryData": {"k": "eA=="}}))),
            [
                "data[a/b]: Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                "data[k]: Invalid value: \"k\": duplicate of key present in binaryData",
            ]
        );
        let big = "x".repeat(MAX_SIZE + 1);
        assert_eq!(
            messages(config_map(&json!({"data": {"big": big}}))),
            [": Too long: must have at most 1048576 bytes"]
        );
    }

    #[test]
    fn secrets_have_the_keys_their_type_needs() {
        assert!(secret(&json!({"type": "Opaque", "data": {"a": "eA=="}})).is_empty());
        assert_eq!(
            messages(secret(
                &json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "x"}})
            )),
            ["data[tls.key]: Required value"]
        );
        assert_eq!(
            messages(secret(
                &json!({"type": "kubernetes.io/service-account-token"})
            )),
            ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
        );
        assert_eq!(
            messages(secret(&json!({"stringData": {"..x": "y"}})))[0],
            "data[..x]: Invalid value: \"..x\": must not start with '..'"
        );
    }

    #[test]
    fn namespace_finalizers() {
        assert!(
            namespace(&json!({"spec": {"finalizers": ["kubernetes", "example.com/x"]}})).is_empty()
        );
        assert_eq!(
            messages(namespace(&json!({"spec": {"finalizers": ["custom"]}}))),
            ["spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"]
        );
    }
}
