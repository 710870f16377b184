//! A container's standard streams, as a CRI runtime keeps them: what it
//! writes goes into its log (CRI lines, one file per run) and out to the
//! clients attached to it (`kubectl attach`, `kubectl run -it`); its input,
//! when the container asks for one (`stdin: true`), is held for them,
//! closed after the first client leaves when `stdinOnce` says so; with
//! `tty: true` all three are one terminal, which clients resize.

use std::process::Stdio as Piped;
use std::sync::Arc;

use bytes::Bytes;
use k8s_openapi::api::core::v1::Container;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, watch, Mutex};

use crate::runtime::{Session, Streams, Terminal};

type Input = Box<dyn AsyncWrite + Send + Unpin>;

/// One run's streams, once its process has started.
pub struct Stdio {
    /// Where the output goes to attached clients: the copying tasks hold
    /// the senders, so that the clients see the end when the output ends.
    output: broadcast::WeakSender<(&'static str, Bytes)>,
    input: Option<Arc<Mutex<Option<Input>>>>,
    once: bool,
    terminal: Option<Terminal>,
    running: watch::Receiver<bool>,
}

/// What the shim is started with, and what the runtime keeps of it.
pub struct Plan {
    /// The shim's standard input, output and error.
    pub stdio: [Piped; 3],
    /// The terminal they are, if they are one.
    pub terminal: Option<Terminal>,
}

/// The standard streams container `c` asks for ([`streams`]).
pub fn plan(c: &Container) -> Result<Plan, String> {
    streams(c.tty == Some(true), c.stdin == Some(true))
}

/// A terminal when `tty` (the input too when `stdin`), else pipes (the
/// input piped when `stdin`, else empty).
pub fn streams(tty: bool, stdin: bool) -> Result<Plan, String> {
    if tty {
        let pty = nix::pty::openpty(None, None).map_err(|e| format!("no terminal: {e}"))?;
        let slave = || {
            pty.slave
                .try_clone()
                .map(Piped::from)
                .map_err(|e| e.to_string())
        };
        let input = match stdin {
            true => slave()?,
            false => Piped::null(),
        };
        return Ok(Plan {
            stdio: [input, slave()?, slave()?],
            terminal: Some(Terminal::new(pty.master)),
        });
    }
    let input = match stdin {
        true => Piped::piped(),
        false => Piped::null(),
    };
    Ok(Plan {
        stdio: [input, Piped::piped(), Piped::piped()],
        terminal: None,
    })
}

impl Stdio {
    /// Takes over the streams of `child`, started as [`plan`] planned
    /// for `c` (with `terminal`, if that is one): its output into `log`
    /// and to attached clients, its input held. `running` turns false
    /// when the run ends.
    pub fn start(
        c: &Container,
        terminal: Option<Terminal>,
        child: &mut tokio::process::Child,
        log: tokio::fs::File,
        running: watch::Receiver<bool>,
    ) -> Self {
        // Room for a slow client to fall 64 reads behind.
        let (output, _) = broadcast::channel(64);
        let log = Arc::new(Mutex::new(log));
        let mut input: Option<Input> = None;
        match terminal.as_ref().and_then(Terminal::files) {
            Some((reader, writer)) => {
                tokio::spawn(copy(reader, "stdout", log, output.clone()));
                if c.stdin == Some(true) {
                    input = Some(Box::new(writer));
                }
            }
            None => {
                if let Some(out) = child.stdout.take() {
                    tokio::spawn(copy(out, "stdout", log.clone(), output.clone()));
                }
                if let Some(err) = child.stderr.take() {
                    tokio::spawn(copy(err, "stderr", log, output.clone()));
                }
                input = child.stdin.take().map(|i| Box::new(i) as Input);
            }
        }
        Stdio {
            output: output.downgrade(),
            input: input.map(|i| Arc::new(Mutex::new(Some(i)))),
            once: c.stdin_once == Some(true),
            terminal,
            running,
        }
    }

    /// A client's session on these streams: what the container writes
    /// from now on, and (when `stdin`) its input.
    pub fn attach(&self, stdin: bool) -> Session {
        let received = self.output.upgrade().map(|sender| sender.subscribe());
        let tty = self.terminal.is_some();
        let (out_reader, mut out_writer) = tokio::io::duplex(64 * 1024);
        let (err_reader, mut err_writer) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            // The output already ended: nothing more comes.
            let Some(mut received) = received else { return };
            loop {
                let (stream, bytes) = match received.recv().await {
                    Ok(chunk) => chunk,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let to = match stream {
                    "stderr" => &mut err_writer,
                    _ => &mut out_writer,
                };
                if to.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
        let input = self.input.clone().filter(|_| stdin).map(|held| {
            let (client, mut from) = tokio::io::duplex(64 * 1024);
            let once = self.once;
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    let n = from.read(&mut buffer).await.unwrap_or(0);
                    let mut held = held.lock().await;
                    if n == 0 {
                        // The client is done: with stdinOnce, so is the
                        // container's input.
                        if once {
                            *held = None;
                        }
                        return;
                    }
                    let Some(to) = held.as_mut() else { return };
                    if to.write_all(&buffer[..n]).await.is_err() || to.flush().await.is_err() {
                        *held = None;
                        return;
                    }
                }
            });
            Box::new(client) as Input
        });
        let streams = Streams {
            stdout: Some(Box::new(out_reader)),
            stderr: (!tty).then(|| Box::new(err_reader) as _),
            stdin: input,
        };
        Session::attached(streams, self.terminal.clone(), self.running.clone())
    }
}

/// Copies a stream of the container into its log, one CRI entry per line
/// (`2026-12-02T10:00:00.123456789Z stdout F text`; a line still open at
/// the end of a read is a partial one, `P`), and out to attached clients.
async fn copy(
    mut from: impl AsyncRead + Unpin,
    stream: &'static str,
    log: Arc<Mutex<tokio::fs::File>>,
    output: broadcast::Sender<(&'static str, Bytes)>,
) {
    // As a BufReader's: a container's output is mostly lines.
    let mut buffer = vec![0u8; 8 * 1024];
    loop {
        // A terminal whose last process went away reads EIO: the end.
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = Bytes::copy_from_slice(&buffer[..n]);
        let _ = output.send((stream, chunk.clone()));
        let entries = entries(&chunk, stream, &format!("{:.9}", jiff::Timestamp::now()));
        let _ = log.lock().await.write_all(&entries).await;
    }
}

/// The CRI log entries of one read of `stream` at `time`.
pub fn entries(chunk: &[u8], stream: &str, time: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 48);
    for line in chunk.split_inclusive(|b| *b == b'\n') {
        let (text, tag) = match line.strip_suffix(b"\n") {
            Some(text) => (text, "F"),
            None => (line, "P"),
        };
        out.extend_from_slice(format!("{time} {stream} {tag} ").as_bytes());
        out.extend_from_slice(text);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::entries;

    #[test]
    fn reads_become_full_and_partial_cri_lines() {
        let t = "2026-12-02T10:00:00.000000001Z";
        assert_eq!(
            String::from_utf8(entries(b"one\ntwo\nthr", "stdout", t)).unwrap(),
            format!("{t} stdout F one\n{t} stdout F two\n{t} stdout P thr\n")
        );
        assert_eq!(
            String::from_utf8(entries(b"/ # ", "stdout", t)).unwrap(),
            format!("{t} stdout P / # \n")
        );
        assert!(entries(b"", "stderr", t).is_empty());
    }
}
