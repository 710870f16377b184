//! Manifests as `-f` names them: a file, a directory of `.yaml`, `.yml`
//! and `.json` files (in name order), or `-` for standard input; each file
//! may hold several YAML documents, and a `kind: List` stands for its items.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The objects of the manifests at `source`, in order, each with the file
/// it came from.
pub fn read(source: &Path) -> Result<Vec<(PathBuf, Value)>> {
    let files = if source == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        return Ok(parse(&text)
            .context("standard input")?
            .into_iter()
            .map(|object| (source.to_owned(), object))
            .collect());
    } else if source.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(source)
            .with_context(|| format!("cannot read the directory {}", source.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
            })
            .collect();
        files.sort();
        files
    } else {
        vec![source.to_owned()]
    };
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let parsed = parse(&text).with_context(|| file.display().to_string())?;
        objects.extend(parsed.into_iter().map(|object| (file.clone(), object)));
    }
    if objects.is_empty() {
        bail!("no objects passed to apply in {}", source.display());
    }
    Ok(objects)
}

/// The objects of one file's text (YAML, which JSON is a subset of).
pub fn parse(text: &str) -> Result<Vec<Value>> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| anyhow::anyhow!("malformed YAML: {e}"))?;
    let mut objects = Vec::new();
    for document in documents {
        match document {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = map.get("items").and_then(Value::as_array);
                objects.extend(items.into_iter().flatten().cloned());
            }
            Value::Object(_) => objects.push(document),
            other => bail!("a manifest document must be an object, not {other}"),
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_lists_and_empty_documents() {
        let text = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n";
        let objects = parse(text).unwrap();
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert!(parse("- 1\n- 2\n").is_err());
        assert!(parse("a: [")
            .unwrap_err()
            .to_string()
            .contains("malformed YAML"));
    }
}
