//! A `NETLINK_NETFILTER` socket that applies the table's operations as
//! nf_tables batches ([`super::netlink`]), made inside the node's network
//! namespace (a socket stays in the namespace of the thread that made
//! it, see [`crate::netns`]). Its calls block: the kernel commits a batch
//! within the `sendmsg` that carries it, so they run off the async
//! runtime's workers.

use std::io::ErrorKind;

use netlink_packet_core::NetlinkPayload;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};

use super::netlink::{self, NfMessage};
use super::Op;
use crate::nla::messages;

/// The send and receive buffers asked for. A batch of
/// [`super::MAX_OPERATIONS`] operations is a few hundred KB in one
/// `sendmsg` (netlink refuses a message larger than the send buffer),
/// and its answers, one acknowledgement per operation, are queued at
/// once (the kernel drops what overflows the receive buffer, and the
/// batch's outcome would be unknown): both well past the defaults.
const BUFFER_BYTES: usize = 16 << 20;

/// What one receive reads at most: an acknowledgement is 36 bytes, a
/// refusal no longer (`NETLINK_CAP_ACK`: it does not echo the message).
const DATAGRAM_BYTES: usize = 64 << 10;

/// The kernel's nf_tables in one network namespace.
pub struct Connection {
    socket: Socket,
    sequence: u32,
}

impl Connection {
    /// A socket in the named namespace (None: this process's own).
    pub async fn open(namespace: Option<&str>) -> Result<Connection, String> {
        crate::netns::within_named(namespace, || {
            let mut socket = Socket::new(NETLINK_NETFILTER)?;
            socket.bind_auto()?;
            socket.connect(&SocketAddr::new(0, 0))?;
            socket.set_cap_ack(true)?;
            // CAP_NET_ADMIN (which writing nftables needs anyway) lifts
            // the limits of net.core.[rw]mem_max; without it, as much as
            // they allow.
            if setsockopt(&socket, sockopt::SndBufForce, &BUFFER_BYTES).is_err() {
                setsockopt(&socket, sockopt::SndBuf, &BUFFER_BYTES)?;
            }
            if setsockopt(&socket, sockopt::RcvBufForce, &BUFFER_BYTES).is_err() {
                setsockopt(&socket, sockopt::RcvBuf, &BUFFER_BYTES)?;
            }
            Ok(Connection {
                socket,
                sequence: 0,
            })
        })
        .await
        .map_err(|e| match namespace {
            Some(name) => format!("nftables netlink in {name}: {e}"),
            None => format!("nftables netlink: {e}"),
        })
    }

    /// Applies `ops` as one transaction: all of them, or (an error) none.
    /// The error names each operation the kernel refused.
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), String> {
        if ops.is_empty() {
            return Ok(());
        }
        let first = self.sequence;
        // The begin, the operations and the end each take a number.
        self.sequence = first.wrapping_add(ops.len() as u32 + 2);
        let batch = netlink::batch(ops, first);
        self.socket
            .send(&batch, 0)
            .map_err(|e| format!("nftables netlink send of {} operations: {e}", ops.len()))?;
        // nfnetlink handles the whole batch within that sendmsg: every
        // answer is queued by now, and a receive that would wait means
        // there are no more.
        let mut answered = 0;
        let mut refused = Vec::new();
        let mut buffer = Vec::with_capacity(DATAGRAM_BYTES);
        while answered < ops.len() {
            buffer.clear();
            match self.socket.recv(&mut buffer, nix::libc::MSG_DONTWAIT) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    return Err(format!(
                        "nftables netlink: the kernel's answers to {} operations: {e}",
                        ops.len()
                    ))
                }
            }
            for answer in messages::<NfMessage>(&buffer)? {
                let sequence = answer.header.sequence_number;
                let NetlinkPayload::Error(error) = answer.payload else {
                    continue;
                };
                let Some(index) = netlink::operation_of(sequence, first, ops.len()) else {
                    // The batch itself refused (its begin or end).
                    if let Some(code) = error.code {
                        return Err(format!(
                            "nftables netlink: the kernel refused the batch: {}",
                            std::io::Error::from_raw_os_error(-code.get())
                        ));
                    }
                    continue;
                };
                answered += 1;
                if let Some(code) = error.code {
                    refused.push(netlink::error_text(&ops[index], -code.get()));
                }
            }
        }
        match (refused.as_slice(), answered == ops.len()) {
            ([], true) => Ok(()),
            ([], false) => Err(format!(
                "nftables netlink: the kernel answered {answered} of {} operations",
                ops.len()
            )),
            ([only], _) => Err(format!("nftables refused {only}")),
            ([first, rest @ ..], _) => Err(format!(
                "nftables refused {first} (and {} more of the batch's {} operations, first {})",
                rest.len(),
                ops.len(),
                rest[..rest.len().min(3)].join("; ")
            )),
        }
    }
}

#[cfg(test)]
mod tests;
