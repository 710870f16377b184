//! Names outside the cluster domain: the host's nameservers (from
//! `/etc/resolv.conf`) answer them, asked with the client's own query and
//! over the client's transport, so that a truncated UDP answer makes the
//! client retry over TCP here as it would there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one upstream nameserver may take before the next is asked.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The nameservers of a `resolv.conf` text, on port 53, in order.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Asks `upstreams` in turn, each for at most two seconds; the first
/// answer to the query's id wins. None: none answered.
pub async fn forward(upstreams: &[SocketAddr], query: &[u8], tcp: bool) -> Option<Message> {
    let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
    for upstream in upstreams {
        let asked = if tcp {
            tokio::time::timeout(TIMEOUT, over_tcp(*upstream, query)).await
        } else {
            tokio::time::timeout(TIMEOUT, over_udp(*upstream, query)).await
        };
        let Ok(Ok(bytes)) = asked else { continue };
        match Message::from_vec(&bytes) {
            Ok(message) if message.metadata.id == id => return Some(message),
            _ => continue,
        }
    }
    None
}

async fn over_udp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    // Connected: only the upstream's datagrams are received.
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buffer = vec![0; usize::from(u16::MAX)];
    let length = socket.recv(&mut buffer).await?;
    buffer.truncate(length);
    Ok(buffer)
}

async fn over_tcp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(upstream).await?;
    let length = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let mut length = [0; 2];
    stream.read_exact(&mut length).await?;
    let mut buffer = vec![0; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut buffer).await?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::op::{MessageType, OpCode, Query};
    use hickory_server::proto::rr::{Name, RecordType};

    #[test]
    fn reads_the_nameservers_of_resolv_conf() {
        let text = "# generated\nsearch example.org\nnameserver 192.0.2.53\nnameserver ::1\nnameserver fe80::1%eth0\noptions ndots:5\n";
        assert_eq!(
            nameservers(text),
            [
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }

    fn query(id: u16) -> Vec<u8> {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::A,
        ));
        message.to_vec().unwrap()
    }

    #[tokio::test]
    async fn forwards_over_udp_to_the_first_upstream_that_answers() {
        // A closed port first (refused at once), then an upstream that
        // echoes the query back as its answer.
        let closed = {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.local_addr().unwrap()
        };
        let echo = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let upstreams = [closed, echo.local_addr().unwrap()];
        tokio::spawn(async move {
            let mut buffer = [0; 512];
            let (length, from) = echo.recv_from(&mut buffer).await.unwrap();
            let mut answer = Message::from_vec(&buffer[..length]).unwrap();
            answer.metadata.message_type = MessageType::Response;
            echo.send_to(&answer.to_vec().unwrap(), from).await.unwrap();
        });
        let answer = forward(&upstreams, &query(7), false)
            .await
            .expect("the second upstream answers");
        assert_eq!(answer.metadata.id, 7);
        assert_eq!(answer.metadata.message_type, MessageType::Response);
    }

    #[tokio::test]
    async fn forwards_over_tcp_with_length_prefixes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut length = [0; 2];
            stream.read_exact(&mut length).await.unwrap();
            let mut buffer = vec![0; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut buffer).await.unwrap();
            stream.write_all(&length).await.unwrap();
            stream.write_all(&buffer).await.unwrap();
        });
        let answer = forward(&[upstream], &query(9), true).await;
        assert_eq!(answer.map(|m| m.metadata.id), Some(9));
    }

    #[tokio::test]
    async fn nothing_answers_without_upstreams() {
        assert!(forward(&[], &query(1), false).await.is_none());
    }
}
