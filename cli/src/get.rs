//! `skiff get`: objects as the server's Tables print them (the columns
//! kubectl shows), or whole as YAML or JSON, or as `type/name`; `-w` goes
//! on printing changes as they happen.

use crate::say;
use anyhow::{bail, Context, Result};
use futures::{AsyncBufReadExt, TryStreamExt};
use serde_json::{json, Value};

use crate::cluster::{Catalog, Cluster, ResourceType};

/// The Table media type kubectl asks for.
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io, application/json";

/// Options of `skiff get`.
#[derive(clap::Args)]
pub struct GetArgs {
    /// The type (pods, po, deployments.apps, ...), or TYPE/NAME.
    resource: String,
    /// Only these objects.
    names: Vec<String>,
    /// Output format: wide (more columns), yaml, json or name.
    #[arg(short = 'o', long, value_enum)]
    output: Option<Format>,
    /// The namespace [default: the kubeconfig's, else default].
    #[arg(short, long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// A label selector: `app=web,tier!=db`, `env in (a,b)`, `!canary`.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// After printing, go on printing changes.
    #[arg(short = 'w', long)]
    watch: bool,
}

/// `-o`.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Format {
    Wide,
    Yaml,
    Json,
    Name,
}

/// What one `get` reads.
struct Query<'a> {
    resource: &'a ResourceType,
    /// `None`: every namespace.
    namespace: Option<String>,
    names: Vec<String>,
    selector: Option<String>,
}

impl Query<'_> {
    fn path(&self, name: Option<&str>, extra: &[(&str, &str)]) -> String {
        let mut path = match name {
            Some(name) => self
                .resource
                .object(self.namespace.as_deref().unwrap_or_default(), name),
            None => self.resource.collection(self.namespace.as_deref()),
        };
        let mut params: Vec<(&str, &str)> = extra.to_vec();
        if let (None, Some(selector)) = (name, &self.selector) {
            params.push(("labelSelector", selector));
        }
        for (i, (key, value)) in params.iter().enumerate() {
            path.push(if i == 0 { '?' } else { '&' });
            path.push_str(&format!("{key}={}", encode(value)));
        }
        path
    }

    /// The objects (or one Table per request when `table`), and the
    /// revision a watch continues from.
    async fn read(&self, cluster: &Cluster, table: bool) -> Result<(Vec<Value>, String)> {
        let accept = if table { TABLE } else { "application/json" };
        let mut answers = Vec::new();
        if self.names.is_empty() {
            answers.push(fetch(cluster, &self.path(None, &[]), accept).await?);
        } else {
            for name in &self.names {
                answers.push(fetch(cluster, &self.path(Some(name), &[]), accept).await?);
            }
        }
        let revision = answers
            .iter()
            .filter_map(|a| a["metadata"]["resourceVersion"].as_str())
            .max_by_key(|rv| rv.parse::<u64>().unwrap_or(0))
            .unwrap_or("0")
            .to_owned();
        Ok((answers, revision))
    }
}

async fn fetch(cluster: &Cluster, path: &str, accept: &str) -> Result<Value> {
    let request = http::Request::builder()
        .uri(path)
        .header(http::header::ACCEPT, accept)
        .body(Vec::new())?;
    cluster.send(request).await
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `skiff get`.
pub async fn run(cluster: &Cluster, args: GetArgs) -> Result<()> {
    let catalog = cluster.catalog().await?;
    let targets = targets(&catalog, &args.resource, args.names)?;
    if args.watch && targets.len() > 1 {
        bail!("watch is only supported on one resource type at a time");
    }
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(
            args.namespace
                .unwrap_or_else(|| cluster.default_namespace.clone()),
        )
    };
    let table = matches!(args.output, None | Some(Format::Wide));
    let several = targets.len() > 1;
    let (mut printed, mut objects) = (0, Vec::new());
    for (resource, names) in targets {
        let query = Query {
            resource,
            namespace: namespace.clone(),
            names,
            selector: args.selector.clone(),
        };
        let (answers, revision) = query.read(cluster, table).await?;
        let mut printer = Printer {
            format: args.output,
            resource,
            with_namespace: query.namespace.is_none() && resource.namespaced,
            qualify: several,
            widths: Vec::new(),
            columns: Vec::new(),
        };
        if table {
            if printed > 0 {
                say!();
            }
            printed += printer.table(&answers);
        } else if args.output == Some(Format::Name) {
            printed += printer.names(&answers);
        } else {
            objects.push((printer.objects(&answers), answers));
        }
        if args.watch {
            return watch(cluster, &query, &mut printer, revision).await;
        }
    }
    if let Some(format) = args.output.filter(|_| !objects.is_empty()) {
        printed += print_objects(format, objects)?;
    }
    if printed == 0 {
        match &namespace {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        }
    }
    Ok(())
}

/// The types and names from `TYPE[,TYPE...] NAME...` or `TYPE/NAME...`.
fn targets<'a>(
    catalog: &'a Catalog,
    resource: &str,
    mut names: Vec<String>,
) -> Result<Vec<(&'a ResourceType, Vec<String>)>> {
    if let Some((kind, name)) = resource.split_once('/') {
        if names.iter().any(|n| !n.contains('/')) {
            bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form");
        }
        names.insert(0, format!("{kind}/{name}"));
        return names
            .iter()
            .map(|word| {
                let (kind, name) = word.split_once('/').expect("checked above");
                Ok((catalog.resolve(kind)?, vec![name.to_owned()]))
            })
            .collect();
    }
    resource
        .split(',')
        .map(|kind| Ok((catalog.resolve(kind)?, names.clone())))
        .collect()
}

/// Prints whole objects: one alone when one was asked for by name, else a
/// `List` of them all.
fn print_objects(format: Format, read: Vec<(Vec<Value>, Vec<Value>)>) -> Result<usize> {
    let alone = read.len() == 1 && read[0].1.len() == 1 && read[0].1[0].get("items").is_none();
    let objects: Vec<Value> = read.into_iter().flat_map(|(objects, _)| objects).collect();
    let count = objects.len();
    let document = match alone {
        true => objects.into_iter().next().unwrap_or_default(),
        false => json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": objects,
            "metadata": {"resourceVersion": ""},
        }),
    };
    whole(format, &document)?;
    Ok(count)
}

async fn watch(
    cluster: &Cluster,
    query: &Query<'_>,
    printer: &mut Printer<'_>,
    mut revision: String,
) -> Result<()> {
    let table = matches!(printer.format, None | Some(Format::Wide));
    let accept = if table { TABLE } else { "application/json" };
    let field = query.names.first().map(|n| format!("metadata.name={n}"));
    loop {
        let mut params = vec![
            ("watch", "1"),
            ("resourceVersion", revision.as_str()),
            ("allowWatchBookmarks", "true"),
        ];
        if let Some(field) = &field {
            params.push(("fieldSelector", field));
        }
        let request = http::Request::builder()
            .uri(query.path(None, &params))
            .header(http::header::ACCEPT, accept)
            .body(Vec::new())?;
        let stream = cluster.client.request_stream(request).await?;
        let mut lines = stream.lines();
        while let Some(line) = lines.try_next().await.context("the watch broke off")? {
            let event: Value = serde_json::from_str(&line).context("a malformed watch event")?;
            let object = &event["object"];
            match event["type"].as_str() {
                Some("ERROR") => bail!(
                    "the watch ended: {}",
                    object["message"].as_str().unwrap_or("an error")
                ),
                Some("BOOKMARK") => {}
                _ => printer.event(object)?,
            }
            let rv = match table {
                true => object["rows"][0]["object"]["metadata"]["resourceVersion"].as_str(),
                false => object["metadata"]["resourceVersion"].as_str(),
            };
            if let Some(rv) = rv.or(object["metadata"]["resourceVersion"].as_str()) {
                revision = rv.to_owned();
            }
        }
    }
}

/// Prints answers in the chosen format.
struct Printer<'a> {
    format: Option<Format>,
    resource: &'a ResourceType,
    with_namespace: bool,
    /// Names print as `type/name` (several types were asked for).
    qualify: bool,
    /// The column widths of the first Table, kept for watch rows.
    widths: Vec<usize>,
    /// The indices of the cells shown.
    columns: Vec<usize>,
}

impl Printer<'_> {
    /// Prints the rows of Tables under one header; answers how many.
    fn table(&mut self, answers: &[Value]) -> usize {
        let mut rows = Vec::new();
        for answer in answers {
            rows.extend(self.rows(answer));
        }
        let Some(first) = answers.first().filter(|_| !rows.is_empty()) else {
            return 0;
        };
        let header = self.header(first);
        self.widths = widths(&header, &rows);
        say!("{}", line(&header, &self.widths));
        for row in &rows {
            say!("{}", line(row, &self.widths));
        }
        rows.len()
    }

    /// Prints `type/name` for each object; answers how many.
    fn names(&self, answers: &[Value]) -> usize {
        let objects = self.objects(answers);
        for object in &objects {
            self.name(object);
        }
        objects.len()
    }

    /// Prints a watch event's object.
    fn event(&mut self, object: &Value) -> Result<()> {
        match self.format {
            None | Some(Format::Wide) => {
                for row in self.rows(object) {
                    if self.widths.is_empty() {
                        let header = self.header(object);
                        self.widths = widths(&header, std::slice::from_ref(&row));
                        say!("{}", line(&header, &self.widths));
                    }
                    say!("{}", line(&row, &self.widths));
                }
                Ok(())
            }
            Some(Format::Name) => {
                self.name(object);
                Ok(())
            }
            Some(format) => {
                if format == Format::Yaml {
                    // Successive objects are separate YAML documents.
                    say!("---");
                }
                whole(format, object)
            }
        }
    }

    /// The columns shown: priority 0, or all with `-o wide`.
    fn shown(&self, table: &Value) -> Vec<(usize, String)> {
        let wide = self.format == Some(Format::Wide);
        table["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .filter(|(_, c)| wide || c["priority"].as_i64().unwrap_or(0) == 0)
            .map(|(i, c)| (i, c["name"].as_str().unwrap_or_default().to_uppercase()))
            .collect()
    }

    fn header(&self, table: &Value) -> Vec<String> {
        let mut header: Vec<String> = self.shown(table).into_iter().map(|(_, n)| n).collect();
        if self.with_namespace {
            header.insert(0, "NAMESPACE".into());
        }
        header
    }

    fn rows(&mut self, table: &Value) -> Vec<Vec<String>> {
        // Watch events may leave the column definitions out after the
        // first: the columns shown then are the first Table's.
        let shown = self.shown(table);
        if !shown.is_empty() {
            self.columns = shown.iter().map(|(i, _)| *i).collect();
        }
        table["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                let cells = row["cells"].as_array().cloned().unwrap_or_default();
                let mut texts: Vec<String> = self
                    .columns
                    .iter()
                    .map(|&i| cells.get(i).map(cell).unwrap_or_default())
                    .collect();
                if let (true, Some(name)) = (self.qualify, texts.first_mut()) {
                    *name = self.resource.qualified(name);
                }
                if self.with_namespace {
                    let ns = row["object"]["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default();
                    texts.insert(0, ns.to_owned());
                }
                texts
            })
            .collect()
    }

    /// The answers' objects: lists' items (given their apiVersion and
    /// kind), or the objects themselves.
    fn objects(&self, answers: &[Value]) -> Vec<Value> {
        let mut objects = Vec::new();
        for answer in answers {
            match answer["items"].as_array() {
                Some(items) => objects.extend(items.iter().map(|item| {
                    let mut item = item.clone();
                    item["apiVersion"] = json!(self.resource.api_version());
                    item["kind"] = json!(self.resource.kind);
                    item
                })),
                None => objects.push(answer.clone()),
            }
        }
        objects
    }

    fn name(&self, object: &Value) {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        say!("{}", self.resource.qualified(name));
    }
}

/// Prints one object (or List) as JSON or YAML.
fn whole(format: Format, object: &Value) -> Result<()> {
    match format {
        Format::Json => say!("{}", serde_json::to_string_pretty(object)?),
        _ => {
            let yaml = serde_saphyr::to_string(object).context("cannot write YAML")?;
            crate::write_out(format_args!("{yaml}"));
        }
    }
    Ok(())
}

/// A cell as kubectl prints it.
fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".into(),
        other => other.to_string(),
    }
}

/// Each column's width: its widest text.
pub fn widths(header: &[String], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, text) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(text.chars().count());
            }
        }
    }
    widths
}

/// One line of aligned columns, three spaces apart, as kubectl's tabwriter.
pub fn line(texts: &[String], widths: &[usize]) -> String {
    let mut out = String::new();
    for (i, text) in texts.iter().enumerate() {
        if i + 1 == texts.len() {
            out.push_str(text);
        } else {
            let width = widths.get(i).copied().unwrap_or(0);
            out.push_str(&format!("{text:<width$}   "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_three_spaces_apart() {
        let header = vec!["NAME".to_string(), "READY".into(), "AGE".into()];
        let rows = vec![vec!["web-abc".to_string(), "1/1".into(), "5s".into()]];
        let widths = widths(&header, &rows);
        assert_eq!(line(&header, &widths), "NAME      READY   AGE");
        assert_eq!(line(&rows[0], &widths), "web-abc   1/1     5s");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("env in (a,b),!canary"),
            "env%20in%20%28a%2Cb%29%2C%21canary"
        );
        assert_eq!(encode("app=web"), "app%3Dweb");
    }
}
