//! Exec and port-forward on the kubelet's side, over a WebSocket in the
//! Kubernetes channel protocol (`v5.channel.k8s.io` as kubectl ≥ 1.30
//! speaks it for exec, `v4.channel.k8s.io` as the Python client does for
//! both): each message starts with its channel.
//!
//! - exec: the command runs in the container
//!   ([`crate::runtime::Runtime::exec`]); 0 stdin, 1 stdout, 2 stderr, 3
//!   the final status (a `Status` in JSON), 4 terminal resize; v5 adds 255,
//!   closing a channel.
//! - port-forward: one connection per port of the query, made inside the
//!   pod's network namespace to `localhost:PORT` as upstream's kubelet
//!   does; port `i` has data channel `2i` and error channel `2i + 1`, each
//!   opened by a frame holding the port (two bytes, little-endian).
//!
//! What is pure (framing, the status) is tested without I/O.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::runtime::Session;

/// The subprotocols served, most preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The channels.
pub const STDIN: u8 = 0;
/// Standard output.
pub const STDOUT: u8 = 1;
/// Standard error.
pub const STDERR: u8 = 2;
/// The final status.
pub const ERROR: u8 = 3;
/// Terminal resizes.
pub const RESIZE: u8 = 4;
/// (v5) Closes the channel named in the next byte.
pub const CLOSE: u8 = 255;

/// Which streams an exec asks for, from its query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Whether the client sends standard input.
    pub stdin: bool,
    /// Whether it reads standard output.
    pub stdout: bool,
    /// Whether it reads standard error.
    pub stderr: bool,
    /// Whether the command gets a terminal.
    pub tty: bool,
}

impl Options {
    /// The options of an `exec` query (`command` repeated).
    pub fn parse(query: &[(String, String)]) -> Options {
        let flag = |name: &str| {
            query
                .iter()
                .any(|(k, v)| k == name && (v == "true" || v == "1"))
        };
        Options {
            command: query
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect(),
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            stderr: flag("stderr"),
            tty: flag("tty"),
        }
    }
}

/// The status the error channel carries when the command ends with
/// `code` (upstream's `v4WriteStatusFunc`).
pub fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// A client's message split into its channel and data.
pub fn channel(message: &Message) -> Option<(u8, Vec<u8>)> {
    let bytes: Vec<u8> = match message {
        Message::Binary(b) => b.to_vec(),
        // The Python client sends text frames: the channel is the first
        // character.
        Message::Text(t) => t.as_bytes().to_vec(),
        _ => return None,
    };
    let (&first, rest) = bytes.split_first()?;
    Some((first, rest.to_vec()))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(bytes.into())
}

/// Copies `from` into frames of `channel` until it ends.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    channel: u8,
    out: tokio::sync::mpsc::Sender<Message>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            // A terminal whose last user went away reads EIO: the end.
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.send(frame(channel, &buffer[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The socket's incoming messages, and a queue into one task that sends
/// what is queued, then a normal closure (1000: what clients read as the
/// end) once the queue's senders are gone.
fn split(
    socket: WebSocket,
) -> (
    futures::stream::SplitStream<WebSocket>,
    tokio::sync::mpsc::Sender<Message>,
    tokio::task::JoinHandle<()>,
) {
    let (mut sink, incoming) = socket.split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let close = CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
        let _ = sink.close().await;
    });
    (incoming, tx, writer)
}

/// Runs an exec (or attach) session over `socket` until the command (or
/// the container's run) ends: its output out, the client's input in and
/// the terminal resized as it asks, then the status, then the close.
pub async fn serve(socket: WebSocket, mut session: Session, options: Options) {
    let (incoming, tx, writer) = split(socket);
    let mut incoming = incoming;
    let streams = session.streams();
    let terminal = session.terminal();
    let mut pumps = Vec::new();
    if let Some(out) = streams.stdout {
        pumps.push(tokio::spawn(pump(out, STDOUT, tx.clone())));
    }
    if let Some(err) = streams.stderr {
        pumps.push(tokio::spawn(pump(err, STDERR, tx.clone())));
    }
    let mut stdin = streams.stdin.filter(|_| options.stdin);
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                return;
            }
            match channel(&message) {
                Some((STDIN, data)) => {
                    if let Some(input) = stdin.as_mut() {
                        if input.write_all(&data).await.is_err() || input.flush().await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Some((CLOSE, data)) if data.first() == Some(&STDIN) => stdin = None,
                Some((RESIZE, data)) => {
                    let size = crate::runtime::terminal_size(&data);
                    if let (Some(terminal), Some((width, height))) = (&terminal, size) {
                        terminal.resize(width, height);
                    }
                }
                _ => {}
            }
        }
    });
    let code = session.wait().await;
    for pump in pumps {
        let _ = pump.await;
    }
    let status = exit_status(&options.command, code);
    let _ = tx.send(frame(ERROR, status.to_string().as_bytes())).await;
    drop(tx);
    let _ = writer.await;
    reader.abort();
}

/// The ports of a port-forward query (`ports=80,8080`, or repeated).
pub fn ports(query: &[(String, String)]) -> Result<Vec<u16>, String> {
    let ports: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "ports" || k == "port")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    ports
        .iter()
        .map(|p| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!(
                "unable to parse \"{p}\" as a port: port must be a number from 1 to 65535"
            )),
            Ok(port) => Ok(port),
        })
        .collect()
}

/// Forwards one connection per port over `socket`, each made inside the
/// network namespace at `netns`, until the client or every connection is
/// done.
pub async fn forward(socket: WebSocket, netns: std::path::PathBuf, ports: Vec<u16>) {
    let (incoming, tx, writer) = split(socket);
    let mut incoming = incoming;
    let mut writers = Vec::new();
    let mut pumps = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
        let _ = tx.send(frame(data, &port.to_le_bytes())).await;
        let _ = tx.send(frame(error, &port.to_le_bytes())).await;
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
        match crate::process::netns::connect(
            netns.clone(),
            address,
            std::time::Duration::from_secs(5),
        )
        .await
        {
            Ok(stream) => {
                let (read, write) = stream.into_split();
                pumps.push(tokio::spawn(pump(read, data, tx.clone())));
                writers.push(Some(write));
            }
            Err(e) => {
                let message = format!("error forwarding port {port} to pod: failed to connect to localhost:{port} inside the pod's network namespace: {e}");
                let _ = tx.send(frame(error, message.as_bytes())).await;
                writers.push(None);
            }
        }
    }
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                return;
            }
            let Some((channel, bytes)) = channel(&message) else {
                continue;
            };
            let index = usize::from(channel / 2);
            if channel % 2 != 0 {
                continue;
            }
            if let Some(Some(write)) = writers.get_mut(index) {
                if write.write_all(&bytes).await.is_err() {
                    writers[index] = None;
                }
            }
        }
    });
    for pump in pumps {
        let _ = pump.await;
    }
    drop(tx);
    let _ = writer.await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_queries_and_statuses_read_as_upstreams() {
        let query: Vec<(String, String)> = [
            ("command", "sh"),
            ("command", "-c"),
            ("command", "exit 3"),
            ("stdin", "true"),
            ("stdout", "true"),
            ("tty", "false"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let options = Options::parse(&query);
        assert_eq!(options.command, ["sh", "-c", "exit 3"]);
        assert!(options.stdin && options.stdout && !options.stderr && !options.tty);
        let failed = exit_status(&options.command, 3);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(
            failed["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert_eq!(
            failed["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        assert_eq!(
            exit_status(&[], 0),
            json!({"metadata": {}, "status": "Success"})
        );
        assert_eq!(
            channel(&Message::Text("\u{0}ls\n".into())),
            Some((0, b"ls\n".to_vec()))
        );
        assert_eq!(
            channel(&Message::Binary(vec![255, 0].into())),
            Some((255, vec![0]))
        );
    }
}
