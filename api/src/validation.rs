//! The name rules of Kubernetes objects and labels, with upstream's
//! messages, so that a 422 from Skiff reads like one from a real cluster.

const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_1035_MESSAGE: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_MESSAGE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| lower_alnum(c) || c == '-')
        && s.starts_with(lower_alnum)
        && s.ends_with(lower_alnum)
}

/// Why `s` is not a DNS-1123 subdomain (at most 253 characters), if it is not.
pub fn subdomain_error(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    (!s.split('.').all(is_label)).then(|| SUBDOMAIN_MESSAGE.into())
}

/// Why `s` is not a DNS-1123 label (at most 63 characters), if it is not.
pub fn label_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!is_label(s)).then(|| LABEL_MESSAGE.into())
}

/// Why `s` is not a DNS-1035 label (a DNS-1123 label starting with a
/// letter), if it is not.
pub fn label_1035_error(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!is_label(s) || !s.starts_with(|c: char| c.is_ascii_lowercase()))
        .then(|| LABEL_1035_MESSAGE.into())
}

fn is_qualified_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| alnum(c) || "-_.".contains(c))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// Why `s` is not a qualified name (`[prefix/]name`, as label and
/// annotation keys are), if it is not.
pub fn qualified_name_error(s: &str) -> Option<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if let Some(e) = subdomain_error(prefix) {
            return Some(format!("prefix part {e}"));
        }
    }
    (!is_qualified_part(name)).then(|| QUALIFIED_MESSAGE.into())
}

/// Why `s` is not a label value, if it is not.
pub fn label_value_error(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    (!is_qualified_part(s)).then(|| VALUE_MESSAGE.into())
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
        assert!(subdomain_error(&"a".repeat(254)).is_some());
        assert_eq!(label_error("kube-system"), None);
        assert!(label_error("a.b").is_some());
        assert!(label_error(&"a".repeat(64)).is_some());
        assert_eq!(label_1035_error("web"), None);
        assert!(label_1035_error("1web").is_some());
    }

    #[test]
    fn label_keys_and_values() {
        assert_eq!(qualified_name_error("app.kubernetes.io/name"), None);
        assert_eq!(qualified_name_error("App_Name"), None);
        assert!(qualified_name_error("Bad.Prefix/name").is_some());
        assert!(qualified_name_error("a/b/c").is_some());
        assert!(qualified_name_error("").is_some());
        assert_eq!(label_value_error(""), None);
        assert_eq!(label_value_error("v1.2_3"), None);
        assert!(label_value_error("-x").is_some());
        assert!(label_value_error(&"x".repeat(64)).is_some());
    }
}
