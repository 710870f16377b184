//! The thin layer around the index: hickory-server's UDP and TCP serving,
//! a request handler that asks the index (or the upstreams), and the
//! watches that keep the index.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;

use crate::index::Index;

/// The largest UDP answer sent, whatever a client's EDNS offers (the
/// common 4096 of resolvers).
const MAX_UDP_PAYLOAD: u16 = 4096;

/// Answers from the index, and forwards or refuses the rest.
pub struct Handler {
    /// The cluster domain's records.
    pub index: Arc<RwLock<Index>>,
    /// Where names outside the cluster domain go; None: refused.
    pub upstreams: Option<Vec<SocketAddr>>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        // A client that speaks EDNS gets EDNS back, with the UDP size it
        // offered, which also bounds (and truncates) the answer over UDP.
        let edns = request.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(request.max_payload().min(MAX_UDP_PAYLOAD));
            edns
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = self.upstreams.is_some();
        let query = match request.request_info() {
            Ok(info) if request.metadata.op_code == OpCode::Query => info.query,
            Ok(_) => return error(response, builder, metadata, ResponseCode::NotImp).await,
            Err(_) => return error(response, builder, metadata, ResponseCode::FormErr).await,
        };
        let answer = self
            .index
            .read()
            .expect("the DNS index")
            .answer(query.name(), query.query_type());
        if let Some(answer) = answer {
            metadata.authoritative = true;
            metadata.response_code = answer.code;
            let message = builder.build(
                metadata,
                &answer.answers,
                &answer.authority,
                std::iter::empty(),
                &answer.additionals,
            );
            return send(response, message, metadata).await;
        }
        let Some(upstreams) = self.upstreams.as_deref() else {
            return error(response, builder, metadata, ResponseCode::Refused).await;
        };
        let tcp = request.protocol() != Protocol::Udp;
        match crate::forward::forward(upstreams, request.as_slice(), tcp).await {
            Some(forwarded) => {
                let mut metadata = forwarded.metadata;
                metadata.id = request.metadata.id;
                let message = builder.build(
                    metadata,
                    &forwarded.answers,
                    &forwarded.authorities,
                    std::iter::empty(),
                    &forwarded.additionals,
                );
                send(response, message, metadata).await
            }
            None => error(response, builder, metadata, ResponseCode::ServFail).await,
        }
    }
}

async fn error<R: ResponseHandler>(
    response: R,
    builder: MessageResponseBuilder<'_>,
    mut metadata: Metadata,
    code: ResponseCode,
) -> ResponseInfo {
    metadata.response_code = code;
    let message = builder.build_no_records(metadata);
    send(response, message, metadata).await
}

/// Sends `message`; if that fails, the client gets nothing and the
/// failure is reported as SERVFAIL.
async fn send<'a, R: ResponseHandler>(
    mut response: R,
    message: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    mut metadata: Metadata,
) -> ResponseInfo {
    match response.send_response(message).await {
        Ok(info) => info,
        Err(_) => {
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        }
    }
}

/// A kind the index is kept from.
pub trait Indexed:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Files an added or changed object.
    fn apply(self, index: &mut Index);
    /// Forgets a deleted object.
    fn delete(self, index: &mut Index);
    /// Replaces every object of the kind with a fresh list.
    fn resync(all: Vec<Self>, index: &mut Index);
}

impl Indexed for Service {
    fn apply(self, index: &mut Index) {
        index.apply_service(self);
    }
    fn delete(self, index: &mut Index) {
        index.delete_service(&self);
    }
    fn resync(all: Vec<Self>, index: &mut Index) {
        index.resync_services(all);
    }
}

impl Indexed for EndpointSlice {
    fn apply(self, index: &mut Index) {
        index.apply_slice(self);
    }
    fn delete(self, index: &mut Index) {
        index.delete_slice(&self);
    }
    fn resync(all: Vec<Self>, index: &mut Index) {
        index.resync_slices(all);
    }
}

/// Keeps `index` from a list and watch of every `K` (relisting with
/// back-off after errors). Deletions count, so this is the watcher's event
/// stream rather than an informer's touched objects.
pub async fn watch<K: Indexed>(api: kube::Api<K>, index: Arc<RwLock<Index>>) {
    let mut listed = Vec::new();
    let mut events =
        std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        // Errors are retried by the back-off.
        let Ok(event) = event else { continue };
        match event {
            Event::Init => listed.clear(),
            Event::InitApply(object) => listed.push(object),
            Event::InitDone => K::resync(
                std::mem::take(&mut listed),
                &mut index.write().expect("the DNS index"),
            ),
            Event::Apply(object) => object.apply(&mut index.write().expect("the DNS index")),
            Event::Delete(object) => object.delete(&mut index.write().expect("the DNS index")),
        }
    }
}
