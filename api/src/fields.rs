//! Field selectors (`?fieldSelector=spec.nodeName=node-1,status.phase!=Failed`):
//! equality on the fields each kind supports, compared against the kind's
//! field set as upstream's `ToSelectableFields`/`GetAttrs` build it: every
//! supported field has a value, an absent one its Go zero value (`""`,
//! `false`, `0`), so `spec.unschedulable==false` selects the nodes that
//! never set it. Any other field is refused, as upstream answers 400.

use serde_json::Value;

use crate::strategy::{Plain, Strategy};
use crate::ResourceType;

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The dotted field path, such as `spec.nodeName`.
    pub field: String,
    /// `true` for `!=`.
    pub negated: bool,
    /// The value compared with.
    pub value: String,
}

/// A parsed field selector; the empty one matches everything.
#[derive(Debug, Clone)]
pub struct FieldSelector {
    /// All must hold.
    pub terms: Vec<Term>,
    /// The strategy of the kind whose field set the terms are read from.
    strategy: &'static dyn Strategy,
}

impl Default for FieldSelector {
    fn default() -> Self {
        FieldSelector {
            terms: Vec::new(),
            strategy: &Plain,
        }
    }
}

/// Two selectors are the same when their terms are.
impl PartialEq for FieldSelector {
    fn eq(&self, other: &Self) -> bool {
        self.terms == other.terms
    }
}

impl Eq for FieldSelector {}

/// Why a field selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A term without `=`, `==` or `!=`: the selector and the term.
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Malformed(String, String),
    /// A value with a backslash before anything but `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    Escape(String),
    /// A field the kind does not support.
    #[error("field label not supported: {0}")]
    Unsupported(String),
}

/// Splits at commas that are not escaped (upstream's `splitTerms`).
fn split_terms(input: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in input.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&input[start..]);
    terms
}

/// The field, the operator and the value of a term: the first operator
/// found from the left, `!=` and `==` before `=` (upstream's `splitTerm`).
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    (0..term.len())
        .filter(|i| term.is_char_boundary(*i))
        .find_map(|i| {
            ["!=", "==", "="]
                .into_iter()
                .find(|op| term[i..].starts_with(op))
                .map(|op| (&term[..i], op, &term[i + op.len()..]))
        })
}

/// Undoes `\\`, `\,` and `\=` (upstream's `UnescapeValue`).
fn unescape(value: &str) -> Result<String, FieldError> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(next @ ('\\' | ',' | '=')) => out.push(next),
            _ => return Err(FieldError::Escape(value.to_owned())),
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses a selector for `resource`, refusing fields it does not
    /// support: `metadata.name`, `metadata.namespace` (namespaced kinds
    /// only, as upstream's `ObjectMetaFieldsSet`) and the kind's own.
    pub fn parse(input: &str, resource: &ResourceType) -> Result<Self, FieldError> {
        let mut terms = Vec::new();
        for part in split_terms(input).into_iter().map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let (field, op, value) =
                split_term(part).ok_or_else(|| FieldError::Malformed(input.into(), part.into()))?;
            let field = field.trim();
            let supported = field == "metadata.name"
                || (field == "metadata.namespace" && resource.namespaced)
                || resource.strategy.fields().contains(&field);
            if !supported {
                return Err(FieldError::Unsupported(field.into()));
            }
            terms.push(Term {
                field: field.into(),
                negated: op == "!=",
                value: unescape(value.trim())?,
            });
        }
        Ok(Self {
            terms,
            strategy: resource.strategy,
        })
    }

    /// Whether `object` satisfies every term.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|term| {
            (selectable(self.strategy, object, &term.field) == term.value) != term.negated
        })
    }
}

/// The value of `field` in an object's field set, as upstream's
/// `ToSelectableFields` computes it: what its kind's `strategy` computes
/// (`status.podIP` from `podIPs`, an absent boolean as `false`), else the
/// string at the field's path, an absent one empty.
pub fn selectable(strategy: &dyn Strategy, object: &Value, field: &str) -> String {
    strategy.field(object, field).unwrap_or_else(|| {
        let at = field.split('.').try_fold(object, |v, part| v.get(part));
        match at {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(other) => other.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use serde_json::json;

    fn select(registry: &Registry, plural: &str, selector: &str, object: &Value) -> bool {
        let resource = registry.by_plural("", "v1", plural).unwrap();
        FieldSelector::parse(selector, resource)
            .unwrap()
            .matches(object)
    }

    #[test]
    fn supported_fields_match_and_others_are_refused() {
        let registry = Registry::builtin();
        let pods = registry.by_plural("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "web", "namespace": "default"},
                         "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}});
        let select = |s: &str| select(&registry, "pods", s, &pod);
        assert!(select(""));
        assert!(select("spec.nodeName=node-1"));
        assert!(select("spec.nodeName==node-1,status.phase!=Failed"));
        assert!(select("metadata.namespace=default"));
        assert!(!select("metadata.name=other"));
        assert_eq!(
            FieldSelector::parse("spec.bogus=1", pods),
            Err(FieldError::Unsupported("spec.bogus".into()))
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=1,nonsense", pods),
            Err(FieldError::Malformed(
                "metadata.name=1,nonsense".into(),
                "nonsense".into()
            ))
        );
        assert_eq!(
            FieldSelector::parse("nonsense", pods)
                .unwrap_err()
                .to_string(),
            "invalid selector: 'nonsense'; can't understand 'nonsense'"
        );
        let nodes = registry.by_plural("", "v1", "nodes").unwrap();
        assert_eq!(
            FieldSelector::parse("metadata.namespace=x", nodes)
                .unwrap_err()
                .to_string(),
            "field label not supported: metadata.namespace"
        );
        let events = registry.by_plural("", "v1", "events").unwrap();
        assert!(FieldSelector::parse("involvedObject.name=web", events).is_ok());
    }

    #[test]
    fn absent_fields_compare_as_their_zero_values() {
        let registry = Registry::builtin();
        let node = json!({"metadata": {"name": "n1"}, "spec": {}});
        let cordoned = json!({"metadata": {"name": "n2"}, "spec": {"unschedulable": true}});
        for (selector, plain, cordoned_too) in [
            ("spec.unschedulable==false", true, false),
            ("spec.unschedulable=false", true, false),
            ("spec.unschedulable!=false", false, true),
            ("spec.unschedulable=true", false, true),
            ("spec.unschedulable!=true", true, false),
        ] {
            assert_eq!(
                select(&registry, "nodes", selector, &node),
                plain,
                "{selector}"
            );
            assert_eq!(
                select(&registry, "nodes", selector, &cordoned),
                cordoned_too,
                "{selector}"
            );
        }
        let pod = json!({"metadata": {"name": "p"}, "spec": {}});
        for selector in [
            "spec.nodeName=",
            "spec.nodeName==",
            "status.phase=",
            "status.podIP=",
            "spec.restartPolicy=",
            "spec.schedulerName=",
            "spec.serviceAccountName=",
            "status.nominatedNodeName=",
            "spec.hostNetwork=false",
            "spec.nodeName!=node-1",
        ] {
            assert!(select(&registry, "pods", selector, &pod), "{selector}");
        }
        assert!(!select(&registry, "pods", "spec.nodeName!=", &pod));
        let ip = json!({"status": {"podIPs": [{"ip": "10.0.0.5"}], "podIP": "10.0.0.5"}});
        assert!(select(&registry, "pods", "status.podIP=10.0.0.5", &ip));
        let rc = json!({"metadata": {"name": "r"}, "status": {}});
        assert!(select(
            &registry,
            "replicationcontrollers",
            "status.replicas=0",
            &rc
        ));
        assert!(!select(
            &registry,
            "replicationcontrollers",
            "status.replicas!=0",
            &rc
        ));
        let secret = json!({"metadata": {"name": "s"}});
        assert!(select(&registry, "secrets", "type=", &secret));
        let namespace = json!({"metadata": {"name": "default"}});
        assert!(select(&registry, "namespaces", "status.phase=", &namespace));
        assert!(select(&registry, "namespaces", "name=default", &namespace));
        let event = json!({"reportingComponent": "kubelet", "source": {}});
        assert!(select(&registry, "events", "source=kubelet", &event));
        assert!(select(&registry, "events", "reason=,type=", &event));
        let service = json!({"spec": {"type": "ClusterIP"}});
        assert!(select(
            &registry,
            "services",
            "spec.type=ClusterIP,spec.clusterIP=",
            &service
        ));
    }

    #[test]
    fn terms_split_and_unescape_as_upstream() {
        assert_eq!(split_term("a=b!=c"), Some(("a", "=", "b!=c")));
        assert_eq!(split_term("a!=b"), Some(("a", "!=", "b")));
        assert_eq!(split_term("a==b"), Some(("a", "==", "b")));
        assert_eq!(split_terms("a=x\\,y,b=z"), ["a=x\\,y", "b=z"]);
        assert_eq!(unescape("x\\,y\\=z\\\\").unwrap(), "x,y=z\\");
        assert!(unescape("x\\y").is_err());
    }
}
