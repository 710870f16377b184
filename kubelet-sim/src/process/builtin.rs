//! Skiff's built-in programs (`skiff builtin NAME ARGS`), run by the
//! images that name no command ([`super::program`]): small, thread-based
//! (no async runtime), and answering as the upstream images they stand in
//! for do.
//!
//! - `pause`: sleeps until SIGTERM or SIGINT, then exits 0.
//! - `serve-hostname [--port=N]... [--http]`: agnhost's; answers every
//!   HTTP request with the hostname (the pod's name), `/healthz` with
//!   `ok`. Port 9376 by default.
//! - `netexec [--http-port=N]`: agnhost's, on port 8080: `/hostname`,
//!   `/clientip` (the caller's `ip:port` as the server sees it),
//!   `/echo?msg=...`, `/healthz`, `/readyz`, `/exit?code=N`, and `/` the
//!   time.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use nix::sys::signal::{SigSet, Signal};

/// Runs the built-in named by `args[0]`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let Some((name, flags)) = args.split_first() else {
        eprintln!("agnhost: a subcommand is required: serve-hostname, netexec or pause");
        return 1;
    };
    let values = |flag: &str| -> Vec<String> {
        flags
            .iter()
            .filter_map(|f| f.strip_prefix(&format!("--{flag}=")).map(str::to_owned))
            .collect()
    };
    let ports = |flag: &str, default: u16| -> Result<Vec<u16>, String> {
        let given = values(flag);
        if given.is_empty() {
            return Ok(vec![default]);
        }
        given
            .iter()
            .map(|p| p.parse().map_err(|_| format!("--{flag}={p}: not a port")))
            .collect()
    };
    // Stopping signals are taken by `wait_for_stop`, on the main thread.
    let mut stopping = SigSet::empty();
    stopping.add(Signal::SIGTERM);
    stopping.add(Signal::SIGINT);
    if let Err(e) = stopping.thread_block() {
        eprintln!("{name}: cannot take signals: {e}");
        return 1;
    }
    let served = match name.as_str() {
        "pause" => Ok(()),
        "serve-hostname" => ports("port", 9376).and_then(|p| serve(&p, Kind::Hostname)),
        "netexec" => ports("http-port", 8080).and_then(|p| serve(&p, Kind::Netexec)),
        other => Err(format!("unknown command {other:?} for \"agnhost\"")),
    };
    if let Err(e) = served {
        eprintln!("{name}: {e}");
        return 1;
    }
    match stopping.wait() {
        Ok(signal) => {
            eprintln!("{name}: {signal} received, shutting down");
            0
        }
        Err(_) => 1,
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Hostname,
    Netexec,
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// Listens on every port, a thread each, answering on threads of their
/// own.
fn serve(ports: &[u16], kind: Kind) -> Result<(), String> {
    for &port in ports {
        let listener = TcpListener::bind(("0.0.0.0", port))
            .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
        eprintln!("Serving on port {port}.");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || answer(stream, kind));
            }
        });
    }
    Ok(())
}

/// Reads one request and answers it; the connection then closes.
fn answer(stream: TcpStream, kind: Kind) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // The headers: read and dropped.
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| decode(v))
    };
    let mut exit = None;
    let (code, body) = match (kind, path) {
        (_, "/healthz" | "/readyz") => (200, "ok".to_string()),
        (Kind::Hostname, _) => (200, hostname()),
        (Kind::Netexec, "/hostname") => (200, hostname()),
        (Kind::Netexec, "/clientip") => (200, peer),
        (Kind::Netexec, "/echo") => (200, param("msg").unwrap_or_default()),
        (Kind::Netexec, "/exit") => {
            exit = Some(param("code").and_then(|c| c.parse().ok()).unwrap_or(0));
            (200, String::new())
        }
        (Kind::Netexec, "/") => (200, format!("NOW: {}", jiff::Timestamp::now())),
        (Kind::Netexec, _) => (404, "404 page not found\n".to_string()),
    };
    let reason = if code == 200 { "OK" } else { "Not Found" };
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = (&stream).write_all(response.as_bytes());
    if let Some(code) = exit {
        std::process::exit(code);
    }
}

/// Decodes `%XX` and `+` in a query value.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(decode("hello+world%21"), "hello world!");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%é"), "%é");
    }
}
