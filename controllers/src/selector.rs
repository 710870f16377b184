//! Controllers' selectors: `skiff_api::labels::Selector` read from an
//! object's `spec.selector` (a `LabelSelector` or, in ReplicationControllers
//! and Services, a plain map), selecting nothing when empty.

use std::collections::BTreeMap;

use serde_json::Value;
use skiff_api::labels::Selector;

/// The selector of a controller (`spec.selector` as JSON), parsed once. An
/// empty, absent or invalid selector selects nothing, as controllers treat
/// it (unlike `?labelSelector=`, where empty selects everything).
pub fn parse(selector: &Value) -> Option<Selector> {
    Selector::from_object(selector).filter(|s| !s.is_empty())
}

/// Whether `selector` (JSON) selects `labels`.
pub fn matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    parse(selector).is_some_and(|s| s.matches_map(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_of_both_shapes() {
        let web = labels(&[("app", "web"), ("tier", "fe")]);
        assert!(matches(&json!({"matchLabels": {"app": "web"}}), &web));
        assert!(
            matches(&json!({"app": "web"}), &web),
            "a ReplicationController's map"
        );
        assert!(!matches(&json!({"matchLabels": {"app": "db"}}), &web));
        assert!(!matches(&json!({}), &web), "empty selects nothing");
        assert!(!matches(&Value::Null, &web));
        let expressions = json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "canary", "operator": "DoesNotExist"}]});
        assert!(matches(&expressions, &web));
        assert!(!matches(
            &expressions,
            &labels(&[("tier", "fe"), ("canary", "1")])
        ));
    }
}
