//! Label selectors: the full syntax of `kubectl -l` and `?labelSelector=`
//! (`a=b`, `a==b`, `a!=b`, `a in (b,c)`, `a notin (b)`, `a`, `!a`, and the
//! numeric `a>1`, `a<1`), parsed once and matched against an object's labels.

use crate::validation::{label_value_error, qualified_name_error};

/// How a requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `key=value` or `key==value`.
    Equals,
    /// `key!=value` (also true when the label is absent).
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)` (also true when the label is absent).
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>n`.
    GreaterThan,
    /// `key<n`.
    LessThan,
}

/// One comma-separated part of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The comparison.
    pub op: Op,
    /// The values compared with (none for `Exists`/`DoesNotExist`).
    pub values: Vec<String>,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// All must hold.
    pub requirements: Vec<Requirement>,
}

/// Why a selector did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    Open,
    Close,
    Comma,
    Greater,
    Less,
}

fn tokenize(input: &str) -> Result<Vec<Token>, SelectorError> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(Token::DoubleEquals);
                } else {
                    tokens.push(Token::Equals);
                }
            }
            '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(Token::NotEquals);
                } else {
                    tokens.push(Token::Bang);
                }
            }
            '(' | ')' | ',' | '>' | '<' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    ',' => Token::Comma,
                    '>' => Token::Greater,
                    _ => Token::Less,
                });
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "=!(),<>".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    /// A value, which may be empty (`a=` selects an empty label value).
    fn value(&mut self) -> String {
        match self.peek() {
            Some(Token::Word(w)) => {
                let w = w.clone();
                self.at += 1;
                w
            }
            _ => String::new(),
        }
    }

    fn set(&mut self) -> Result<Vec<String>, SelectorError> {
        if self.next() != Some(Token::Open) {
            return Err(SelectorError("expected '(' after in/notin".into()));
        }
        let mut values = vec![self.value()];
        loop {
            match self.next() {
                Some(Token::Comma) => values.push(self.value()),
                Some(Token::Close) => return Ok(values),
                _ => {
                    return Err(SelectorError(
                        "expected ',' or ')' in a set of values".into(),
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, negated) = match self.next() {
            Some(Token::Bang) => match self.next() {
                Some(Token::Word(key)) => (key, true),
                _ => return Err(SelectorError("expected a key after '!'".into())),
            },
            Some(Token::Word(key)) => (key, false),
            other => return Err(SelectorError(format!("expected a key, found {other:?}"))),
        };
        if let Some(e) = qualified_name_error(&key) {
            return Err(SelectorError(format!("invalid label key {key:?}: {e}")));
        }
        let (op, values) = if negated {
            (Op::DoesNotExist, vec![])
        } else {
            match self.peek() {
                None | Some(Token::Comma) => (Op::Exists, vec![]),
                Some(_) => match self.next() {
                    Some(Token::Equals | Token::DoubleEquals) => (Op::Equals, vec![self.value()]),
                    Some(Token::NotEquals) => (Op::NotEquals, vec![self.value()]),
                    Some(Token::Greater) => (Op::GreaterThan, vec![self.value()]),
                    Some(Token::Less) => (Op::LessThan, vec![self.value()]),
                    Some(Token::Word(w)) if w == "in" => (Op::In, self.set()?),
                    Some(Token::Word(w)) if w == "notin" => (Op::NotIn, self.set()?),
                    other => {
                        return Err(SelectorError(format!(
                            "unexpected {other:?} after key {key:?}"
                        )))
                    }
                },
            }
        };
        for value in &values {
            if matches!(op, Op::GreaterThan | Op::LessThan) {
                if value.parse::<i64>().is_err() {
                    return Err(SelectorError(format!(
                        "for '<' and '>', the value must be an integer, not {value:?}"
                    )));
                }
            } else if let Some(e) = label_value_error(value) {
                return Err(SelectorError(format!("invalid label value {value:?}: {e}")));
            }
        }
        Ok(Requirement { key, op, values })
    }
}

impl Selector {
    /// Parses a selector; the empty string selects everything.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            tokens: tokenize(input)?,
            at: 0,
        };
        let mut requirements = Vec::new();
        if parser.tokens.is_empty() {
            return Ok(Self { requirements });
        }
        loop {
            requirements.push(parser.requirement()?);
            match parser.next() {
                None => return Ok(Self { requirements }),
                Some(Token::Comma) => continue,
                Some(other) => {
                    return Err(SelectorError(format!(
                        "expected ',' between requirements, found {other:?}"
                    )))
                }
            }
        }
    }

    /// Whether labels (looked up by `label`) satisfy every requirement.
    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| {
            let value = label(&r.key);
            let number = || value.and_then(|v| v.parse::<i64>().ok());
            let bound = || r.values[0].parse::<i64>().ok();
            match r.op {
                Op::Equals | Op::In => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
                Op::NotEquals | Op::NotIn => {
                    !value.is_some_and(|v| r.values.iter().any(|x| x == v))
                }
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
                Op::GreaterThan => matches!((number(), bound()), (Some(n), Some(b)) if n > b),
                Op::LessThan => matches!((number(), bound()), (Some(n), Some(b)) if n < b),
            }
        })
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a label map satisfies every requirement.
    pub fn matches_map(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.matches(|k| labels.get(k).map(String::as_str))
    }

    /// A selector as objects carry it (JSON): a `LabelSelector`
    /// (`matchLabels` and `matchExpressions`) or a plain map of labels (a
    /// ReplicationController's or a Service's). `None` for an operator
    /// that is not one of a LabelSelector's.
    pub fn from_object(selector: &serde_json::Value) -> Option<Selector> {
        use serde_json::Value;
        let object = selector.as_object()?;
        let structured =
            object.contains_key("matchLabels") || object.contains_key("matchExpressions");
        let pairs = if structured {
            object.get("matchLabels").and_then(Value::as_object)
        } else {
            Some(object)
        };
        let mut requirements: Vec<Requirement> = pairs
            .into_iter()
            .flatten()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                op: Op::Equals,
                values: vec![v.as_str().unwrap_or_default().to_owned()],
            })
            .collect();
        for expression in object
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let values = expression["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            let key = expression["key"].as_str().unwrap_or_default();
            requirements.push(Requirement::from_operator(
                key,
                expression["operator"].as_str()?,
                values,
            )?);
        }
        Some(Selector { requirements })
    }
}

impl Requirement {
    /// A requirement as LabelSelector and NodeSelector expressions spell
    /// it: `In`, `NotIn`, `Exists`, `DoesNotExist`, and (node selectors)
    /// `Gt`, `Lt`. `None` for another operator.
    pub fn from_operator(key: &str, operator: &str, values: Vec<String>) -> Option<Requirement> {
        let op = match operator {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" if values.len() == 1 => Op::GreaterThan,
            "Lt" if values.len() == 1 => Op::LessThan,
            _ => return None,
        };
        Some(Requirement {
            key: key.to_owned(),
            op,
            values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selects(selector: &str, pairs: &[(&str, &str)]) -> bool {
        let labels = labels(pairs);
        Selector::parse(selector)
            .unwrap()
            .matches(|k| labels.get(k).map(String::as_str))
    }

    #[test]
    fn object_selectors_read_as_requirements() {
        let selector = Selector::from_object(&serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]
        }))
        .unwrap();
        assert!(selector.matches_map(&labels(&[("app", "web")])));
        assert!(!selector.matches_map(&labels(&[("app", "web"), ("tier", "db")])));
        let map = Selector::from_object(&serde_json::json!({"app": "web"})).unwrap();
        assert!(map.matches_map(&labels(&[("app", "web")])));
        assert!(Requirement::from_operator("a", "Sideways", vec![]).is_none());
        assert!(Requirement::from_operator("a", "Gt", vec![]).is_none());
    }

    #[test]
    fn every_operator_matches_as_upstream() {
        let web = &[("app", "web"), ("tier", "front"), ("gen", "3")];
        assert!(selects("", web));
        assert!(selects("app=web", web));
        assert!(selects("app==web", web));
        assert!(!selects("app!=web", web));
        assert!(selects("app!=db", web));
        assert!(
            selects("missing!=x", web),
            "!= holds when the label is absent"
        );
        assert!(selects("app in (db, web)", web));
        assert!(!selects("app notin (db,web)", web));
        assert!(selects("missing notin (x)", web));
        assert!(selects("tier", web));
        assert!(selects("!missing", web));
        assert!(!selects("!tier", web));
        assert!(selects("gen>2", web));
        assert!(!selects("gen<3", web));
        assert!(selects("app=web,tier in (front),!canary", web));
        assert!(!selects("app=web,tier=back", web));
        assert!(selects("example.com/role=", &[("example.com/role", "")]));
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for bad in [
            "=web",
            "app in web",
            "app in (web",
            "app=web,",
            "!",
            "a b",
            "app=-bad-",
            "gen>x",
            "UPPER_/x=1",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} parsed");
        }
        // An empty value is a value.
        assert!(Selector::parse("app=").is_ok());
        assert!(Selector::parse("app ==").is_ok());
    }
}
