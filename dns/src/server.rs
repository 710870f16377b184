//! The thin layer around the index: the request handler that asks the
//! index (or the upstreams), served over TCP by hickory-server and over
//! UDP by a few receive loops that answer in place, and the watches that
//! keep the index.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use skiff_runtime::{Event, Informer};
use tokio::net::UdpSocket;

use crate::index::Index;

/// The largest UDP answer sent, whatever a client's EDNS offers (the
/// common 4096 of resolvers).
const MAX_UDP_PAYLOAD: u16 = 4096;

/// Answers from the index, and forwards or refuses the rest.
#[derive(Clone)]
pub struct Handler {
    /// The cluster domain's records.
    pub index: Arc<RwLock<Index>>,
    /// Where names outside the cluster domain go; None: refused.
    pub upstreams: Option<Arc<[SocketAddr]>>,
}

/// What a request is answered with.
struct Reply {
    metadata: Metadata,
    answers: Vec<Record>,
    authority: Vec<Record>,
    additionals: Vec<Record>,
}

type Iter<'a> = std::slice::Iter<'a, Record>;

impl Reply {
    fn error(mut metadata: Metadata, code: ResponseCode) -> Reply {
        metadata.response_code = code;
        Reply {
            metadata,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        }
    }

    /// The message to send. A client that speaks EDNS gets EDNS back with
    /// the UDP size it offered, which also bounds (and truncates) the
    /// answer over UDP.
    fn message<'q, 'a>(
        &'a self,
        request: &'q Request,
        edns: Option<&'q Edns>,
    ) -> MessageResponse<'q, 'a, Iter<'a>, Iter<'a>, Iter<'a>, Iter<'a>> {
        MessageResponseBuilder::new(&request.queries, edns).build(
            self.metadata,
            &self.answers,
            &self.authority,
            &[],
            &self.additionals,
        )
    }
}

fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|_| {
        let mut edns = Edns::new();
        edns.set_max_payload(request.max_payload().min(MAX_UDP_PAYLOAD));
        edns
    })
}

impl Handler {
    /// The reply from the index, or None for a name outside the cluster
    /// domain that goes upstream.
    fn local(&self, request: &Request) -> Option<Reply> {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = self.upstreams.is_some();
        let query = match request.request_info() {
            Ok(info) if request.metadata.op_code == OpCode::Query => info.query,
            Ok(_) => return Some(Reply::error(metadata, ResponseCode::NotImp)),
            Err(_) => return Some(Reply::error(metadata, ResponseCode::FormErr)),
        };
        let answer = self
            .index
            .read()
            .expect("the DNS index")
            .answer(query.name(), query.query_type());
        match answer {
            Some(answer) => {
                metadata.authoritative = true;
                metadata.response_code = answer.code;
                Some(Reply {
                    metadata,
                    answers: answer.answers,
                    authority: answer.authority,
                    additionals: answer.additionals,
                })
            }
            None if self.upstreams.is_none() => Some(Reply::error(metadata, ResponseCode::Refused)),
            None => None,
        }
    }

    /// The upstreams' reply (over the client's transport), else SERVFAIL.
    async fn forward(&self, request: &Request) -> Reply {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let upstreams = self.upstreams.as_deref().unwrap_or_default();
        let tcp = request.protocol() != Protocol::Udp;
        match crate::forward::forward(upstreams, request.as_slice(), tcp).await {
            Some(forwarded) => Reply {
                metadata: forwarded.metadata,
                answers: forwarded.answers,
                authority: forwarded.authorities,
                additionals: forwarded.additionals,
            },
            None => Reply::error(metadata, ResponseCode::ServFail),
        }
    }

    async fn reply(&self, request: &Request) -> Reply {
        match self.local(request) {
            Some(reply) => reply,
            None => self.forward(request).await,
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let reply = self.reply(request).await;
        let edns = response_edns(request);
        match response
            .send_response(reply.message(request, edns.as_ref()))
            .await
        {
            Ok(info) => info,
            Err(_) => {
                let mut metadata = reply.metadata;
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// A UDP reply encoded within the client's size (512 bytes, or its EDNS
/// size): what does not fit is left out and the TC bit set.
fn encode_udp(request: &Request, reply: &Reply) -> Option<Vec<u8>> {
    let edns = response_edns(request);
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(edns.as_ref().map_or(512, Edns::max_payload));
    reply
        .message(request, edns.as_ref())
        .destructive_emit(&mut encoder)
        .ok()?;
    Some(bytes)
}

/// One UDP receive loop, on a socket of its own. A query the index
/// answers is answered here, without a task or a channel per query (the
/// load of cluster DNS); one that goes upstream gets a task of its own.
/// It runs until the socket fails, and answers why.
pub async fn serve_udp(socket: Arc<UdpSocket>, handler: Handler) -> std::io::Error {
    let mut buffer = vec![0; usize::from(MAX_UDP_PAYLOAD)];
    loop {
        let (length, peer) = match socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            // An ICMP error of an earlier send, and the like.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return e,
        };
        let Ok(request) = Request::from_bytes(buffer[..length].to_vec(), peer, Protocol::Udp)
        else {
            continue;
        };
        // Never answer answers (reflection).
        if request.metadata.message_type == MessageType::Response {
            continue;
        }
        match handler.local(&request) {
            Some(reply) => {
                if let Some(bytes) = encode_udp(&request, &reply) {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
            None => {
                let (socket, handler) = (socket.clone(), handler.clone());
                tokio::spawn(async move {
                    let reply = handler.forward(&request).await;
                    if let Some(bytes) = encode_udp(&request, &reply) {
                        let _ = socket.send_to(&bytes, peer).await;
                    }
                });
            }
        }
    }
}

/// A kind the index is kept from.
pub trait Indexed: kube::Resource + Send + Sync + 'static {
    /// Files an added or changed object.
    fn apply(this: Arc<Self>, index: &mut Index);
    /// Forgets a deleted object.
    fn delete(&self, index: &mut Index);
    /// Replaces every object of the kind with a fresh list.
    fn resync(all: Vec<Arc<Self>>, index: &mut Index);
}

impl Indexed for Service {
    fn apply(this: Arc<Self>, index: &mut Index) {
        index.apply_service(this);
    }
    fn delete(&self, index: &mut Index) {
        index.delete_service(self);
    }
    fn resync(all: Vec<Arc<Self>>, index: &mut Index) {
        index.resync_services(all);
    }
}

impl Indexed for EndpointSlice {
    fn apply(this: Arc<Self>, index: &mut Index) {
        index.apply_slice(this);
    }
    fn delete(&self, index: &mut Index) {
        index.delete_slice(self);
    }
    fn resync(all: Vec<Arc<Self>>, index: &mut Index) {
        index.resync_slices(all);
    }
}

/// Keeps `index` from the process's shared informer of every `K`: its
/// objects are shared with the index, not copied. Deletions count, and a
/// complete (re)list replaces the kind's records.
pub async fn watch<K: Indexed>(informer: Informer<K>, index: Arc<RwLock<Index>>) {
    let mut events = informer.subscribe();
    while let Some(event) = events.recv().await {
        let mut index = index.write().expect("the DNS index");
        match event {
            Event::Added(object) | Event::Updated { new: object, .. } => {
                K::apply(object, &mut index)
            }
            Event::Deleted(object) => object.delete(&mut index),
            Event::Synced => K::resync(informer.list(), &mut index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::op::{Message, Query};
    use hickory_server::proto::rr::{Name, RecordType};
    use serde_json::json;

    /// A handler over an index holding a headless `db` with 100 ready
    /// endpoints.
    fn handler(upstreams: Option<Arc<[SocketAddr]>>) -> Handler {
        let mut index = Index::new(Name::from_ascii("cluster.local").unwrap());
        index.resync_services(vec![serde_json::from_value::<Service>(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"clusterIP": "None"}
        }))
        .unwrap()]);
        let endpoints: Vec<_> = (1..=100)
            .map(|i| json!({"addresses": [format!("10.244.1.{i}")]}))
            .collect();
        index.resync_slices(vec![serde_json::from_value::<EndpointSlice>(json!({
            "metadata": {"name": "db-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": endpoints,
        }))
        .unwrap()]);
        Handler {
            index: Arc::new(RwLock::new(index)),
            upstreams,
        }
    }

    fn request(name: &str, edns_size: Option<u16>) -> Request {
        let mut message = Message::query();
        message.metadata.id = 42;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        if let Some(size) = edns_size {
            let mut edns = Edns::new();
            edns.set_max_payload(size);
            message.set_edns(edns);
        }
        let peer = "127.0.0.1:5353".parse().unwrap();
        Request::from_bytes(message.to_vec().unwrap(), peer, Protocol::Udp).unwrap()
    }

    /// The UDP answer to `request`, decoded, with its size.
    fn udp_answer(handler: &Handler, request: &Request) -> (Message, usize) {
        let reply = handler.local(request).expect("answered here");
        let bytes = encode_udp(request, &reply).expect("encoded");
        (Message::from_vec(&bytes).unwrap(), bytes.len())
    }

    #[test]
    fn udp_answers_larger_than_the_clients_size_are_truncated() {
        let handler = handler(None);
        let name = "db.default.svc.cluster.local.";
        // 100 A records need about 1,650 bytes.
        for (edns, limit) in [(None, 512), (Some(1232), 1232)] {
            let (answer, size) = udp_answer(&handler, &request(name, edns));
            assert!(answer.metadata.truncation, "limit {limit}");
            assert!(size <= limit, "{size} > {limit}");
            assert_eq!(answer.metadata.id, 42);
        }
        let (answer, _) = udp_answer(&handler, &request(name, Some(4096)));
        assert!(!answer.metadata.truncation);
        assert_eq!(answer.answers.len(), 100);
        assert!(answer.metadata.authoritative);
        assert_eq!(answer.edns.map(|e| e.max_payload()), Some(4096));
    }

    #[test]
    fn names_outside_the_domain_are_refused_or_left_to_the_upstreams() {
        let (answer, _) = udp_answer(&handler(None), &request("example.com.", None));
        assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
        assert!(!answer.metadata.recursion_available);
        let upstreams: Arc<[SocketAddr]> = Arc::new(["127.0.0.1:53".parse().unwrap()]);
        let forwarding = handler(Some(upstreams));
        assert!(forwarding.local(&request("example.com.", None)).is_none());
    }
}
