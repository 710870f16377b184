//! Netlink attributes and framing as the proxy's two netlink codecs share
//! them, the IPVS one (generic netlink, [`crate::ipvs::codec`]) and the
//! nftables one (nfnetlink, [`crate::nftables::netlink`]): an attribute
//! is a value or a nest of attributes, written in the byte order the
//! kernel's policy reads it (host order for IPVS's integers, network
//! order for nftables'). The message framing itself is
//! `netlink-packet-core`'s.

use std::net::IpAddr;

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkBuffer, NetlinkDeserializable, NetlinkMessage, Nla, NlaBuffer,
    NlasIterator, NLA_F_NESTED,
};

/// One attribute: a value, or attributes nested in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    /// `kind` and its value's bytes.
    Value(u16, Vec<u8>),
    /// `kind` (emitted with `NLA_F_NESTED`) and what it holds.
    Nested(u16, Vec<Attr>),
}

impl Attr {
    pub(crate) fn u16(kind: u16, value: u16) -> Attr {
        Attr::Value(kind, value.to_ne_bytes().to_vec())
    }

    pub(crate) fn be16(kind: u16, value: u16) -> Attr {
        Attr::Value(kind, value.to_be_bytes().to_vec())
    }

    pub(crate) fn u32(kind: u16, value: u32) -> Attr {
        Attr::Value(kind, value.to_ne_bytes().to_vec())
    }

    /// A u32 in network order (nftables' `NLA_U32`s, read with `ntohl`).
    pub(crate) fn be32(kind: u16, value: u32) -> Attr {
        Attr::Value(kind, value.to_be_bytes().to_vec())
    }

    /// A u64 in network order (nftables' timeouts, read with `be64_to_cpu`).
    pub(crate) fn be64(kind: u16, value: u64) -> Attr {
        Attr::Value(kind, value.to_be_bytes().to_vec())
    }

    pub(crate) fn string(kind: u16, value: &str) -> Attr {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        Attr::Value(kind, bytes)
    }

    pub(crate) fn address(kind: u16, address: IpAddr) -> Attr {
        let mut bytes = [0u8; 16];
        match address {
            IpAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => bytes.copy_from_slice(&v6.octets()),
        }
        Attr::Value(kind, bytes.to_vec())
    }
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::Value(_, bytes) => bytes.len(),
            Attr::Nested(_, attrs) => attrs.as_slice().buffer_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Attr::Value(kind, _) => *kind,
            Attr::Nested(kind, _) => kind | NLA_F_NESTED,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Attr::Value(_, bytes) => buffer.copy_from_slice(bytes),
            Attr::Nested(_, attrs) => attrs.as_slice().emit(buffer),
        }
    }
}

/// A finalized message's bytes.
pub fn serialize<T: netlink_packet_core::NetlinkSerializable>(
    message: &NetlinkMessage<T>,
) -> Vec<u8> {
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// The netlink messages one datagram holds, in order.
pub fn messages<T: NetlinkDeserializable>(
    datagram: &[u8],
) -> Result<Vec<NetlinkMessage<T>>, String> {
    let mut messages = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let length = NetlinkBuffer::new_checked(rest)
            .map_err(|e| format!("a malformed netlink message: {e}"))?
            .length() as usize;
        if length == 0 || length > rest.len() {
            return Err(format!(
                "a netlink message of {length} bytes in {} left",
                rest.len()
            ));
        }
        let message = NetlinkMessage::<T>::deserialize(&rest[..length])
            .map_err(|e| format!("a malformed netlink message: {e}"))?;
        messages.push(message);
        rest = &rest[((length + 3) & !3).min(rest.len())..];
    }
    Ok(messages)
}

/// The (kind, value) of each attribute in `bytes`.
pub(crate) fn attributes(bytes: &[u8]) -> Result<Vec<(u16, &[u8])>, DecodeError> {
    NlasIterator::new(bytes)
        .map(|nla| {
            let nla: NlaBuffer<&[u8]> = nla?;
            let kind = nla.kind();
            let length = nla.value_length();
            Ok((kind, &nla.into_inner()[4..4 + length]))
        })
        .collect()
}

/// The attributes in `bytes`, a nest read as one where its kind carries
/// `NLA_F_NESTED` (as nft and libmnl mark them; the IPVS kernel does not).
#[cfg(test)]
pub(crate) fn tree(bytes: &[u8]) -> Result<Vec<Attr>, DecodeError> {
    NlasIterator::new(bytes)
        .map(|nla| {
            let nla: NlaBuffer<&[u8]> = nla?;
            let (kind, nested, length) = (nla.kind(), nla.nested_flag(), nla.value_length());
            let value = &nla.into_inner()[4..4 + length];
            Ok(match nested {
                true => Attr::Nested(kind, tree(value)?),
                false => Attr::Value(kind, value.to_vec()),
            })
        })
        .collect()
}
