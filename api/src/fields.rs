//! Field selectors (`?fieldSelector=spec.nodeName=node-1,status.phase!=Failed`):
//! equality on the fields each kind supports; any other field is an error,
//! as upstream answers 400.

use serde_json::Value;

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// All must hold.
    pub terms: Vec<Term>,
}

/// Why a field selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A term without `=`, `==` or `!=`.
    #[error("invalid selector: '{0}'; can't understand '{0}'")]
    Malformed(String),
    /// A field the kind does not support.
    #[error("field label not supported: {0}")]
    Unsupported(String),
}

impl FieldSelector {
    /// Parses a selector for `resource`, refusing fields it does not support.
    pub fn parse(input: &str, resource: &ResourceType) -> Result<Self, FieldError> {
        let mut terms = Vec::new();
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, negated, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, false, v)
            } else {
                return Err(FieldError::Malformed(part.into()));
            };
            let field = field.trim();
            let supported = ["metadata.name", "metadata.namespace"].contains(&field)
                || resource.fields.contains(&field);
            if !supported {
                return Err(FieldError::Unsupported(field.into()));
            }
            terms.push(Term {
                field: field.into(),
                negated,
                value: value.trim().into(),
            });
        }
        Ok(Self { terms })
    }

    /// Whether `object` satisfies every term. A missing field reads as the
    /// empty string, as upstream's field sets do; numbers and booleans
    /// compare by their text.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|term| {
            let found = term
                .field
                .split('.')
                .try_fold(object, |v, part| v.get(part));
            let text = match found {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (text == term.value) != term.negated
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;
    use serde_json::json;

    #[test]
    fn supported_fields_match_and_others_are_refused() {
        let registry = Registry::builtin();
        let pods = registry.by_plural("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "web", "namespace": "default"},
                         "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}});
        let select = |s: &str| FieldSelector::parse(s, pods).unwrap().matches(&pod);
        assert!(select(""));
        assert!(select("spec.nodeName=node-1"));
        assert!(select("spec.nodeName==node-1,status.phase!=Failed"));
        assert!(!select("metadata.name=other"));
        assert!(select("status.podIP="), "a missing field reads as empty");
        assert_eq!(
            FieldSelector::parse("spec.bogus=1", pods),
            Err(FieldError::Unsupported("spec.bogus".into()))
        );
        assert!(matches!(
            FieldSelector::parse("nonsense", pods),
            Err(FieldError::Malformed(_))
        ));
        let events = registry.by_plural("", "v1", "events").unwrap();
        assert!(FieldSelector::parse("involvedObject.name=web", events).is_ok());
    }
}
