//! SPDY/3.1, as kubectl speaks it for port-forward (HTTP/1.1 upgrade to
//! `SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`): frames,
//! zlib-compressed header blocks with the protocol's dictionary, and the
//! port-forward streams. No library serves SPDY in Rust (it was superseded
//! by HTTP/2), so this is our own, kept to what kubectl uses.
//!
//! An exec (kubectl before 1.30, `X-Stream-Protocol-Version:
//! v4.channel.k8s.io`) is one stream per standard stream the client asks
//! for (`streamType: stdin`, `stdout`, `stderr`, `resize`) and `error`,
//! which ends with the final `Status`, as over a WebSocket.
//!
//! Each forwarded connection is two client-opened streams with the same
//! `requestID`: `streamType: error` and `streamType: data`, naming the
//! `port`. Both are accepted (SYN_REPLY); the data stream carries the
//! bytes both ways to `localhost:PORT` inside the pod's network namespace,
//! the error stream any error, then both end (FIN).

use std::collections::HashMap;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The SPDY/3 header dictionary: the draft's, 1423 bytes (checked against
/// what kubectl sends: its zlib streams name this dictionary's adler32).
const DICTIONARY: &[u8] = include_bytes!("spdy3.dict");

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const WINDOW_UPDATE: u16 = 9;
/// The last frame of a stream from its sender.
const FIN: u8 = 1;

/// A frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A control frame: its type, flags and payload.
    Control(u16, u8, Vec<u8>),
    /// Data of a stream: its id, flags and bytes.
    Data(u32, u8, Vec<u8>),
}

/// Reads one frame.
pub async fn read(from: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Frame> {
    let mut head = [0u8; 8];
    from.read_exact(&mut head).await?;
    let flags = head[4];
    let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if length > 16 << 20 {
        return Err(std::io::Error::other("a SPDY frame over 16 MiB"));
    }
    let mut data = vec![0u8; length];
    from.read_exact(&mut data).await?;
    Ok(match head[0] & 0x80 {
        0 => Frame::Data(
            u32::from_be_bytes([head[0], head[1], head[2], head[3]]),
            flags,
            data,
        ),
        _ => Frame::Control(u16::from_be_bytes([head[2], head[3]]), flags, data),
    })
}

/// A frame's bytes.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let (mut bytes, flags, data) = match frame {
        Frame::Control(kind, flags, data) => {
            let mut b = vec![0x80, 3];
            b.extend_from_slice(&kind.to_be_bytes());
            (b, *flags, data)
        }
        Frame::Data(stream, flags, data) => {
            ((stream & 0x7fff_ffff).to_be_bytes().to_vec(), *flags, data)
        }
    };
    bytes.push(flags);
    bytes.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    bytes.extend_from_slice(data);
    bytes
}

/// One direction's header compression (a zlib stream per connection and
/// direction, primed with the dictionary).
pub struct Headers {
    inflate: Decompress,
    deflate: Compress,
}

impl Default for Headers {
    fn default() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .expect("the SPDY dictionary");
        Headers {
            inflate: Decompress::new(true),
            deflate,
        }
    }
}

impl Headers {
    /// Decodes a header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            let before_in = self.inflate.total_in();
            let before_out = self.inflate.total_out();
            let mut chunk = vec![0u8; 4096];
            let status = self
                .inflate
                .decompress(input, &mut chunk, FlushDecompress::Sync);
            let read = (self.inflate.total_in() - before_in) as usize;
            let wrote = (self.inflate.total_out() - before_out) as usize;
            out.extend_from_slice(&chunk[..wrote]);
            input = &input[read..];
            match status {
                Ok(Status::Ok | Status::BufError) if input.is_empty() && wrote < chunk.len() => {
                    break
                }
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| e.to_string())?;
                }
                Err(e) => return Err(format!("a SPDY header block: {e}")),
            }
        }
        parse(&out)
    }

    /// Encodes a header block.
    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            for part in [name, value] {
                plain.extend_from_slice(&(part.len() as u32).to_be_bytes());
                plain.extend_from_slice(part.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let _ = self
            .deflate
            .compress_vec(&plain, &mut out, FlushCompress::Sync);
        out
    }
}

/// Reads a decoded header block.
struct Cursor<'a> {
    block: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, length: usize) -> Result<&'a [u8], String> {
        let bytes = self
            .block
            .get(self.at..self.at + length)
            .ok_or("a short SPDY header block")?;
        self.at += length;
        Ok(bytes)
    }

    fn number(&mut self) -> Result<usize, String> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn text(&mut self) -> Result<String, String> {
        let length = self.number()?;
        Ok(String::from_utf8_lossy(self.bytes(length)?).into_owned())
    }
}

/// A decoded header block's pairs (names lowercase).
fn parse(block: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut cursor = Cursor { block, at: 0 };
    let count = cursor.number()?;
    (0..count)
        .map(|_| Ok((cursor.text()?.to_lowercase(), cursor.text()?)))
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The connection's reading half, and a queue into one task that writes
/// what is queued, then shuts the writing half once the senders are gone.
fn split<IO: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
    io: IO,
) -> (
    tokio::io::ReadHalf<IO>,
    tokio::sync::mpsc::Sender<Frame>,
    tokio::task::JoinHandle<()>,
) {
    let (reader, mut writer) = tokio::io::split(io);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Frame>(64);
    let sending = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&encode(&frame)).await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    (reader, tx, sending)
}

/// Serves kubectl's port-forward streams over an upgraded `io` until it
/// closes, connecting inside the network namespace at `netns`.
pub async fn forward(
    io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
    netns: std::path::PathBuf,
) {
    let (mut reader, tx, sending) = split(io);
    let mut headers = Headers::default();
    // requestID -> (error stream, data stream, port)
    let mut pairs: HashMap<String, (Option<u32>, Option<u32>, u16)> = HashMap::new();
    // data stream -> the connection's writing half
    let mut conns: HashMap<u32, tokio::sync::mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    while let Ok(frame) = read(&mut reader).await {
        match frame {
            Frame::Control(SYN_STREAM, _, data) if data.len() >= 10 => {
                let stream = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) & 0x7fff_ffff;
                let Ok(pairs_in) = headers.decode(&data[10..]) else {
                    break;
                };
                let reply = headers.encode(&[]);
                let mut body = stream.to_be_bytes().to_vec();
                body.extend_from_slice(&reply);
                let _ = tx.send(Frame::Control(SYN_REPLY, 0, body)).await;
                let id = header(&pairs_in, "requestid").unwrap_or("0").to_owned();
                let port = header(&pairs_in, "port")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let entry = pairs.entry(id.clone()).or_insert((None, None, port));
                match header(&pairs_in, "streamtype") {
                    Some("error") => entry.0 = Some(stream),
                    Some("data") => entry.1 = Some(stream),
                    _ => {}
                }
                if let (Some(error), Some(data)) = (entry.0, entry.1) {
                    let port = entry.2;
                    pairs.remove(&id);
                    let (conn_tx, conn_rx) = tokio::sync::mpsc::channel(64);
                    conns.insert(data, conn_tx);
                    tokio::spawn(connection(
                        netns.clone(),
                        port,
                        error,
                        data,
                        tx.clone(),
                        conn_rx,
                    ));
                }
            }
            Frame::Control(PING, _, data) => {
                let _ = tx.send(Frame::Control(PING, 0, data)).await;
            }
            Frame::Control(GOAWAY, _, _) => break,
            Frame::Control(RST_STREAM, _, data) if data.len() >= 4 => {
                let stream = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) & 0x7fff_ffff;
                if let Some(conn) = conns.remove(&stream) {
                    let _ = conn.send(None).await;
                }
            }
            Frame::Control(..) => {}
            Frame::Data(stream, flags, bytes) => {
                if !bytes.is_empty() {
                    // Give the window back as it is used.
                    let mut body = stream.to_be_bytes().to_vec();
                    body.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                    let _ = tx.send(Frame::Control(WINDOW_UPDATE, 0, body)).await;
                }
                if let Some(conn) = conns.get(&stream) {
                    if !bytes.is_empty() {
                        let _ = conn.send(Some(bytes)).await;
                    }
                    if flags & FIN != 0 {
                        let _ = conn.send(None).await;
                    }
                }
            }
        }
    }
    drop(tx);
    drop(conns);
    let _ = sending.await;
}

/// Runs an exec (or attach) `session` over an upgraded `io`: once the
/// client has opened the streams `options` name, the output goes out on
/// them, input comes in, resizes reach the terminal, and the error
/// stream ends with the status.
pub async fn exec(
    io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
    mut session: crate::runtime::Session,
    options: crate::stream::Options,
) {
    let (mut reader, tx, sending) = split(io);
    let wanted: Vec<&str> = [
        Some("error"),
        options.stdin.then_some("stdin"),
        options.stdout.then_some("stdout"),
        options.stderr.then_some("stderr"),
        options.tty.then_some("resize"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut headers = Headers::default();
    let mut streams: HashMap<String, u32> = HashMap::new();
    // The streams first, as upstream waits for them.
    while streams.len() < wanted.len() {
        let Ok(frame) = read(&mut reader).await else {
            return;
        };
        if let Frame::Control(SYN_STREAM, _, data) = frame {
            if data.len() < 10 {
                return;
            }
            let stream = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) & 0x7fff_ffff;
            let Ok(pairs) = headers.decode(&data[10..]) else {
                return;
            };
            let mut body = stream.to_be_bytes().to_vec();
            body.extend_from_slice(&headers.encode(&[]));
            let _ = tx.send(Frame::Control(SYN_REPLY, 0, body)).await;
            if let Some(kind) = header(&pairs, "streamtype") {
                streams.insert(kind.to_owned(), stream);
            }
        }
    }
    let pump = |from: Box<dyn AsyncRead + Send + Unpin>, stream: Option<u32>| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let (Some(stream), mut from) = (stream, from) else {
                return;
            };
            let mut buffer = vec![0u8; 32 * 1024];
            while let Ok(n) = from.read(&mut buffer).await {
                if n == 0
                    || tx
                        .send(Frame::Data(stream, 0, buffer[..n].to_vec()))
                        .await
                        .is_err()
                {
                    break;
                }
            }
            let _ = tx.send(Frame::Data(stream, FIN, Vec::new())).await;
        })
    };
    let standard = session.streams();
    let terminal = session.terminal();
    let resize_stream = streams.get("resize").copied();
    let mut pumps = Vec::new();
    if let Some(out) = standard.stdout {
        pumps.push(pump(out, streams.get("stdout").copied()));
    }
    if let Some(err) = standard.stderr {
        pumps.push(pump(err, streams.get("stderr").copied()));
    }
    let mut stdin = standard.stdin;
    let stdin_stream = streams.get("stdin").copied();
    let window = tx.clone();
    let input = tokio::spawn(async move {
        while let Ok(frame) = read(&mut reader).await {
            match frame {
                Frame::Data(stream, flags, bytes) if Some(stream) == stdin_stream => {
                    if !bytes.is_empty() {
                        let mut body = stream.to_be_bytes().to_vec();
                        body.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                        let _ = window.send(Frame::Control(WINDOW_UPDATE, 0, body)).await;
                        if let Some(input) = stdin.as_mut() {
                            if input.write_all(&bytes).await.is_err()
                                || input.flush().await.is_err()
                            {
                                stdin = None;
                            }
                        }
                    }
                    if flags & FIN != 0 {
                        stdin = None;
                    }
                }
                Frame::Data(stream, _, bytes) if Some(stream) == resize_stream => {
                    let size = crate::runtime::terminal_size(&bytes);
                    if let (Some(terminal), Some((width, height))) = (&terminal, size) {
                        terminal.resize(width, height);
                    }
                }
                Frame::Control(PING, _, data) => {
                    let _ = window.send(Frame::Control(PING, 0, data)).await;
                }
                Frame::Control(GOAWAY, ..) => return,
                _ => {}
            }
        }
    });
    let code = session.wait().await;
    for pump in pumps {
        let _ = pump.await;
    }
    if let Some(&error) = streams.get("error") {
        let status = crate::stream::exit_status(&options.command, code).to_string();
        let _ = tx.send(Frame::Data(error, 0, status.into_bytes())).await;
        let _ = tx.send(Frame::Data(error, FIN, Vec::new())).await;
    }
    drop(tx);
    let _ = sending.await;
    input.abort();
}

/// One forwarded connection: the pod's port, joined to the data stream.
async fn connection(
    netns: std::path::PathBuf,
    port: u16,
    error: u32,
    data: u32,
    tx: tokio::sync::mpsc::Sender<Frame>,
    mut from_client: tokio::sync::mpsc::Receiver<Option<Vec<u8>>>,
) {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = std::time::Duration::from_secs(5);
    let stream = match crate::process::netns::connect(netns, address, timeout).await {
        Ok(stream) => stream,
        Err(e) => {
            let message = format!("error forwarding port {port} to pod: failed to connect to localhost:{port} inside the pod's network namespace: {e}");
            let _ = tx.send(Frame::Data(error, 0, message.into_bytes())).await;
            let _ = tx.send(Frame::Data(error, FIN, Vec::new())).await;
            let _ = tx.send(Frame::Data(data, FIN, Vec::new())).await;
            return;
        }
    };
    let (mut read, mut write) = stream.into_split();
    let to_client = tx.clone();
    let upstream = tokio::spawn(async move {
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            match read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_client
                        .send(Frame::Data(data, 0, buffer[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = to_client.send(Frame::Data(data, FIN, Vec::new())).await;
    });
    while let Some(Some(bytes)) = from_client.recv().await {
        if write.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = write.shutdown().await;
    let _ = upstream.await;
    let _ = tx.send(Frame::Data(error, FIN, Vec::new())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_round_trip_through_the_dictionary() {
        let mut client = Headers::default();
        let mut server = Headers::default();
        let block = client.encode(&[("streamType", "data"), ("port", "8080"), ("requestID", "0")]);
        let headers = server.decode(&block).unwrap();
        assert_eq!(header(&headers, "streamtype"), Some("data"));
        assert_eq!(header(&headers, "port"), Some("8080"));
        // The zlib stream goes on across blocks.
        let second = client.encode(&[("streamType", "error")]);
        assert_eq!(
            header(&server.decode(&second).unwrap(), "streamtype"),
            Some("error")
        );
        assert_eq!(DICTIONARY.len(), 1423);
    }

    #[test]
    fn frames_encode_as_the_draft_lays_them_out() {
        let data = encode(&Frame::Data(5, FIN, b"hi".to_vec()));
        assert_eq!(data, [0, 0, 0, 5, 1, 0, 0, 2, b'h', b'i']);
        let ping = encode(&Frame::Control(PING, 0, vec![0, 0, 0, 1]));
        assert_eq!(ping, [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
    }
}
