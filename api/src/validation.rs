//! The name rules of Kubernetes objects, labels, ports, environment
//! variables and config keys, with upstream's messages (apimachinery's
//! `pkg/util/validation`), so that a 422 from Skiff reads like one from a
//! real cluster. Each `*_errors` function answers every message upstream's
//! `Is*` function would, in its order; each `*_error` the first of them.

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Upstream's `RegexError`: the message, the examples and the regex.
fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{message} (regex used for validation is '{format}')");
    }
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{message} (e.g. {}regex used for validation is '{format}')",
        examples.join(" or ")
    )
}

/// Upstream's `MaxLenError`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Upstream's `InclusiveRangeError`.
pub fn inclusive_range_error(low: i64, high: i64) -> String {
    format!("must be between {low} and {high}, inclusive")
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| lower_alnum(c) || c == '-')
        && s.starts_with(lower_alnum)
        && s.ends_with(lower_alnum)
}

fn first(errors: Vec<String>) -> Option<String> {
    errors.into_iter().next()
}

/// Why `s` is not a DNS-1123 subdomain (at most 253 characters).
pub fn subdomain_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 253 {
        errors.push(max_len_error(253));
    }
    if !s.split('.').all(is_label) {
        errors.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errors
}

/// The first reason `s` is not a DNS-1123 subdomain, if it is not.
pub fn subdomain_error(s: &str) -> Option<String> {
    first(subdomain_errors(s))
}

/// Why `s` is not a DNS-1123 label (at most 63 characters).
pub fn label_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 63 {
        errors.push(max_len_error(63));
    }
    if !is_label(s) {
        errors.push(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errors
}

/// The first reason `s` is not a DNS-1123 label, if it is not.
pub fn label_error(s: &str) -> Option<String> {
    first(label_errors(s))
}

/// Why `s` is not a DNS-1035 label (a DNS-1123 label starting with a
/// letter).
pub fn label_1035_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 63 {
        errors.push(max_len_error(63));
    }
    if !is_label(s) || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        errors.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errors
}

/// The first reason `s` is not a DNS-1035 label, if it is not.
pub fn label_1035_error(s: &str) -> Option<String> {
    first(label_1035_errors(s))
}

fn is_qualified_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.chars().all(|c| alnum(c) || "-_.".contains(c))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// Why `s` is not a qualified name (`[prefix/]name`, as label and
/// annotation keys, resource names and readiness gates are).
pub fn qualified_name_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".into());
            } else {
                errors.extend(
                    subdomain_errors(prefix)
                        .into_iter()
                        .map(|e| format!("prefix part {e}")),
                );
            }
            *name
        }
        _ => {
            errors.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".into());
    } else if name.len() > 63 {
        errors.push(format!("name part {}", max_len_error(63)));
    }
    if !is_qualified_part(name) {
        errors.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errors
}

/// The first reason `s` is not a qualified name, if it is not.
pub fn qualified_name_error(s: &str) -> Option<String> {
    first(qualified_name_errors(s))
}

/// Why `s` is not a label value (empty, or a qualified name part of at
/// most 63 characters).
pub fn label_value_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 63 {
        errors.push(max_len_error(63));
    }
    if !s.is_empty() && !is_qualified_part(s) {
        errors.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

/// The first reason `s` is not a label value, if it is not.
pub fn label_value_error(s: &str) -> Option<String> {
    first(label_value_errors(s))
}

/// Why `s` is not an IANA service name, as port names must be.
pub fn port_name_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 15 {
        errors.push(max_len_error(15));
    }
    if s.is_empty() || !s.chars().all(|c| lower_alnum(c) || c == '-') {
        errors
            .push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errors.push("must contain at least one letter (a-z)".into());
    }
    if s.contains("--") {
        errors.push("must not contain consecutive hyphens".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errors.push("must not begin or end with a hyphen".into());
    }
    errors
}

/// Why `port` is not a port number (1 to 65535).
pub fn port_number_errors(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// Why `s` is not an environment variable name, by the relaxed rule
/// upstream applies since the RelaxedEnvironmentVariableValidation gate
/// went on by default: printable ASCII other than `=`.
pub fn env_var_name_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.is_empty() {
        errors.push("environment variable name must be non-empty".into());
    }
    if s.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errors.push(
            "a valid environment variable name must consist only of printable ASCII characters other than '='"
                .into(),
        );
    }
    errors
}

/// Why `s` is not a ConfigMap or Secret key.
pub fn config_key_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 253 {
        errors.push(max_len_error(253));
    }
    let valid = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    if !valid {
        errors.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    match s {
        "." => errors.push("must not be '.'".into()),
        ".." => errors.push("must not be '..'".into()),
        _ if s.starts_with("..") => errors.push("must not start with '..'".into()),
        _ => {}
    }
    errors
}

/// Why `s` is not an HTTP header name.
pub fn http_header_name_errors(s: &str) -> Vec<String> {
    let valid = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Vec::new()
    } else {
        vec![regex_error(
            "a valid HTTP header must consist of alphanumeric characters or '-'",
            "[-A-Za-z0-9]+",
            &["X-Header-Name"],
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_dns_rules() {
        assert_eq!(subdomain_error("web-1.example"), None);
        assert!(subdomain_error("Web").is_some());
        assert!(subdomain_error("-web").is_some());
        assert!(subdomain_error("web.").is_some());
        assert_eq!(subdomain_errors(&"A".repeat(254)).len(), 2);
        assert_eq!(label_error("kube-system"), None);
        assert!(label_error("a.b").is_some());
        assert_eq!(
            label_error(&"a".repeat(64)).as_deref(),
            Some("must be no more than 63 characters")
        );
        assert_eq!(label_1035_error("web"), None);
        assert!(label_1035_error("1web").is_some());
        assert_eq!(
            label_error("Web_1").unwrap(),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        );
    }

    #[test]
    fn label_keys_and_values() {
        assert_eq!(qualified_name_error("app.kubernetes.io/name"), None);
        assert_eq!(qualified_name_error("App_Name"), None);
        assert!(qualified_name_error("Bad.Prefix/name").is_some());
        assert!(qualified_name_error("a/b/c")
            .unwrap()
            .starts_with("a qualified name must consist of"));
        assert_eq!(
            qualified_name_errors(""),
            [
                "name part must be non-empty".to_owned(),
                format!(
                    "name part {}",
                    regex_error(
                        QUALIFIED_NAME_MSG,
                        QUALIFIED_NAME_FMT,
                        &["MyName", "my.name", "123-abc"]
                    )
                )
            ]
        );
        assert_eq!(
            qualified_name_errors("/x"),
            ["prefix part must be non-empty"]
        );
        assert_eq!(label_value_error(""), None);
        assert_eq!(label_value_error("v1.2_3"), None);
        assert!(label_value_error("-x").is_some());
        assert_eq!(
            label_value_errors(&"x".repeat(64)),
            ["must be no more than 63 characters"]
        );
    }

    #[test]
    fn ports_env_names_and_keys() {
        assert!(port_name_errors("http").is_empty());
        assert_eq!(
            port_name_errors("HTTP"),
            [
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)"
            ]
        );
        assert_eq!(
            port_name_errors("a--b"),
            ["must not contain consecutive hyphens"]
        );
        assert_eq!(port_name_errors("toolongportname1").len(), 1);
        assert_eq!(
            port_number_errors(0),
            ["must be between 1 and 65535, inclusive"]
        );
        assert!(port_number_errors(65535).is_empty());
        assert!(env_var_name_errors("MY VAR-1.x").is_empty());
        assert_eq!(
            env_var_name_errors("A=B"),
            ["a valid environment variable name must consist only of printable ASCII characters other than '='"]
        );
        assert!(env_var_name_errors("é").len() == 1);
        assert!(config_key_errors("app.conf").is_empty());
        assert_eq!(
            config_key_errors("a/b"),
            ["a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"]
        );
        assert_eq!(config_key_errors(".."), ["must not be '..'"]);
        assert_eq!(config_key_errors("..a"), ["must not start with '..'"]);
        assert!(http_header_name_errors("X-Trace").is_empty());
        assert_eq!(http_header_name_errors("X Trace").len(), 1);
    }
}
