//! The table's operations ([`Op`]) as nf_tables netlink messages, encoded
//! without I/O, as the kernel's `include/uapi/linux/netfilter/nf_tables.h`
//! defines them and as nft 1.0.6 sends them (`nft --debug=netlink`, and
//! the bytes of its `sendmsg`): the same messages, attributes and order,
//! but for the set ids nft adds and the acknowledgement we ask for.
//!
//! - A batch is `NFNL_MSG_BATCH_BEGIN` (its `res_id` the nf_tables
//!   subsystem), one message per operation, `NFNL_MSG_BATCH_END`: the
//!   kernel applies it as one transaction, all or nothing.
//! - Each message is `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`, starts with
//!   a `nfgenmsg` (family `NFPROTO_IPV4`) and carries `NLM_F_ACK`, so the
//!   kernel answers each one and a refusal names the message it refuses
//!   (by its sequence number).
//! - Integers are in network order; a rule is a list of expressions, each
//!   its name and its data; registers are the 16-byte `NFT_REG_1`/`_2`
//!   nft uses.
//! - Sets and chains are referred to by name, never by a transaction id:
//!   the kernel finds a name among what the same transaction added,
//!   whereas an id it finds by walking the transaction (what made
//!   anonymous sets quadratic, see [`super::diff`]'s cascade). Only
//!   NEWSET carries an id (`NFTA_SET_ID`), since the kernel refuses one
//!   without: the message's sequence number, unique in its batch.

use netlink_packet_core::{
    DecodeError, Emitable, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST,
};

use super::{Op, Rule, Verdict, NO_ENDPOINTS, SERVICE_IPS, TABLE};
use crate::model::{Address, Protocol};
use crate::nla::{serialize, Attr};

/// `NFNL_SUBSYS_NFTABLES`.
pub const SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN`.
pub const MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub const MSG_BATCH_END: u16 = 0x11;
/// `NFPROTO_IPV4`: the family of the table `ip skiff-proxy`.
pub const NFPROTO_IPV4: u8 = 2;

/// The `NFT_MSG_*` messages the proxy sends.
pub mod msg {
    /// Adds a chain.
    pub const NEWCHAIN: u8 = 3;
    /// Removes a chain.
    pub const DELCHAIN: u8 = 5;
    /// Adds a rule.
    pub const NEWRULE: u8 = 6;
    /// Removes a rule, or (naming only the chain) all of a chain's.
    pub const DELRULE: u8 = 8;
    /// Adds a set.
    pub const NEWSET: u8 = 9;
    /// Removes a set.
    pub const DELSET: u8 = 11;
    /// Adds set elements.
    pub const NEWSETELEM: u8 = 12;
    /// Removes set elements.
    pub const DELSETELEM: u8 = 14;
}

// enum nft_chain_attributes
const CHAIN_TABLE: u16 = 1;
const CHAIN_NAME: u16 = 3;
// enum nft_rule_attributes
const RULE_TABLE: u16 = 1;
const RULE_CHAIN: u16 = 2;
const RULE_EXPRESSIONS: u16 = 4;
// enum nft_set_attributes
const SET_TABLE: u16 = 1;
const SET_NAME: u16 = 2;
const SET_FLAGS: u16 = 3;
const SET_KEY_TYPE: u16 = 4;
const SET_KEY_LEN: u16 = 5;
const SET_ID: u16 = 10;
const SET_TIMEOUT: u16 = 11;
const SET_USERDATA: u16 = 13;
// enum nft_set_elem_list_attributes, nft_set_elem_attributes
const SET_ELEM_LIST_TABLE: u16 = 1;
const SET_ELEM_LIST_SET: u16 = 2;
const SET_ELEM_LIST_ELEMENTS: u16 = 3;
const SET_ELEM_KEY: u16 = 1;
const SET_ELEM_DATA: u16 = 2;
// enum nft_list_attributes, nft_expr_attributes
const LIST_ELEM: u16 = 1;
const EXPR_NAME: u16 = 1;
const EXPR_DATA: u16 = 2;
// enum nft_data_attributes, nft_verdict_attributes
const DATA_VALUE: u16 = 1;
const DATA_VERDICT: u16 = 2;
const VERDICT_CODE: u16 = 1;
const VERDICT_CHAIN: u16 = 2;
// enum nft_immediate_attributes
const IMMEDIATE_DREG: u16 = 1;
const IMMEDIATE_DATA: u16 = 2;
// enum nft_payload_attributes
const PAYLOAD_DREG: u16 = 1;
const PAYLOAD_BASE: u16 = 2;
const PAYLOAD_OFFSET: u16 = 3;
const PAYLOAD_LEN: u16 = 4;
// enum nft_cmp_attributes
const CMP_SREG: u16 = 1;
const CMP_OP: u16 = 2;
const CMP_DATA: u16 = 3;
// enum nft_lookup_attributes
const LOOKUP_SET: u16 = 1;
const LOOKUP_SREG: u16 = 2;
// enum nft_dynset_attributes
const DYNSET_SET_NAME: u16 = 1;
const DYNSET_OP: u16 = 3;
const DYNSET_SREG_KEY: u16 = 4;
// enum nft_ng_attributes
const NG_DREG: u16 = 1;
const NG_MODULUS: u16 = 2;
const NG_TYPE: u16 = 3;
const NG_OFFSET: u16 = 4;
// enum nft_meta_attributes
const META_DREG: u16 = 1;
const META_KEY: u16 = 2;
// enum nft_nat_attributes
const NAT_TYPE: u16 = 1;
const NAT_FAMILY: u16 = 2;
const NAT_REG_ADDR_MIN: u16 = 3;
const NAT_REG_PROTO_MIN: u16 = 5;
const NAT_FLAGS: u16 = 7;

/// `NFT_REG_VERDICT`.
const REG_VERDICT: u32 = 0;
/// `NFT_REG_1`.
const REG_1: u32 = 1;
/// `NFT_REG_2`.
const REG_2: u32 = 2;
/// `NFT_JUMP`.
const JUMP: i32 = -3;
/// `NFT_GOTO`.
const GOTO: i32 = -4;
/// `NFT_PAYLOAD_NETWORK_HEADER`.
const NETWORK_HEADER: u32 = 1;
/// The IPv4 source address: 4 bytes at offset 12 of the header.
const SADDR: (u32, u32) = (12, 4);
/// `NFT_CMP_EQ`.
const CMP_EQ: u32 = 0;
/// `NFT_NG_RANDOM`.
const NG_RANDOM: u32 = 1;
/// `NFT_META_L4PROTO`.
const META_L4PROTO: u32 = 16;
/// `NFT_DYNSET_OP_UPDATE`.
const DYNSET_UPDATE: u32 = 1;
/// `NFT_NAT_DNAT`.
const NAT_DNAT: u32 = 1;
/// `NF_NAT_RANGE_PROTO_SPECIFIED`, as nft sets it for `dnat to A:P`
/// (the kernel adds `NF_NAT_RANGE_MAP_IPS` itself, seeing an address).
const NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
/// `NFT_SET_TIMEOUT | NFT_SET_EVAL`: nft's `flags dynamic,timeout`.
const SET_DYNAMIC_TIMEOUT: u32 = 0x10 | 0x20;
/// nft's datatype `ipv4_addr` (`TYPE_IPADDR`), the affinity sets' key.
const TYPE_IPADDR: u32 = 7;
/// The userdata nft attaches to a set, which `nft list` reads back: the
/// key's byte order (`NFTNL_UDATA_SET_KEYBYTEORDER`, a 4-byte TLV holding
/// `BYTEORDER_BIG_ENDIAN` in host order).
const SET_USERDATA_KEY_BIG_ENDIAN: [u8; 6] = {
    let order = 2u32.to_ne_bytes();
    [0, 4, order[0], order[1], order[2], order[3]]
};

/// An nf_tables message: its type (`NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`,
/// or a batch's begin and end), its `nfgenmsg` and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfMessage {
    /// The netlink message type.
    pub message_type: u16,
    /// `nfgen_family`.
    pub family: u8,
    /// `res_id` (the subsystem, for a batch's begin and end).
    pub resource: u16,
    /// The attributes (the kernel's answers carry none we read).
    pub attrs: Vec<Attr>,
}

impl NfMessage {
    /// An nf_tables message for the table's family.
    fn nftables(message: u8, attrs: Vec<Attr>) -> NfMessage {
        NfMessage {
            message_type: SUBSYS_NFTABLES << 8 | u16::from(message),
            family: NFPROTO_IPV4,
            resource: 0,
            attrs,
        }
    }

    /// A batch's begin or end.
    fn batch(message_type: u16) -> NfMessage {
        NfMessage {
            message_type,
            family: 0,
            resource: SUBSYS_NFTABLES,
            attrs: Vec::new(),
        }
    }
}

/// `struct nfgenmsg`: family, version (`NFNETLINK_V0`), `res_id` (network
/// order).
const NFGENMSG_LEN: usize = 4;

impl NetlinkSerializable for NfMessage {
    fn message_type(&self) -> u16 {
        self.message_type
    }

    fn buffer_len(&self) -> usize {
        NFGENMSG_LEN + self.attrs.as_slice().buffer_len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        buffer[0] = self.family;
        buffer[1] = 0;
        buffer[2..4].copy_from_slice(&self.resource.to_be_bytes());
        self.attrs.as_slice().emit(&mut buffer[NFGENMSG_LEN..]);
    }
}

impl NetlinkDeserializable for NfMessage {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        let (genmsg, rest) = payload
            .split_at_checked(NFGENMSG_LEN)
            .ok_or_else(|| DecodeError::from("an nfnetlink message without its nfgenmsg"))?;
        let attrs = crate::nla::attributes(rest)?
            .into_iter()
            .map(|(kind, value)| Attr::Value(kind, value.to_vec()))
            .collect();
        Ok(NfMessage {
            message_type: header.message_type,
            family: genmsg[0],
            resource: u16::from_be_bytes([genmsg[2], genmsg[3]]),
            attrs,
        })
    }
}

/// The protocol's number (`IPPROTO_*`), as `meta l4proto` loads it.
fn protocol_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

fn nested(kind: u16, attrs: Vec<Attr>) -> Attr {
    Attr::Nested(kind, attrs)
}

/// `NFTA_DATA_VALUE` in its nest.
fn value(kind: u16, bytes: Vec<u8>) -> Attr {
    nested(kind, vec![Attr::Value(DATA_VALUE, bytes)])
}

/// `NFTA_DATA_VERDICT` in its nest: code and chain.
fn verdict(kind: u16, verdict: &Verdict) -> Attr {
    let code = match verdict {
        Verdict::Jump(_) => JUMP,
        Verdict::Goto(_) => GOTO,
    };
    nested(
        kind,
        vec![nested(
            DATA_VERDICT,
            vec![
                Attr::be32(VERDICT_CODE, code as u32),
                Attr::string(VERDICT_CHAIN, verdict.chain()),
            ],
        )],
    )
}

/// One expression: its name and data.
fn expression(name: &str, data: Vec<Attr>) -> Attr {
    nested(
        LIST_ELEM,
        vec![Attr::string(EXPR_NAME, name), nested(EXPR_DATA, data)],
    )
}

/// `immediate reg 0 jump|goto -> CHAIN`.
fn immediate_verdict(to: &Verdict) -> Attr {
    expression(
        "immediate",
        vec![
            Attr::be32(IMMEDIATE_DREG, REG_VERDICT),
            verdict(IMMEDIATE_DATA, to),
        ],
    )
}

/// `immediate reg R DATA`.
fn immediate_data(register: u32, bytes: Vec<u8>) -> Attr {
    expression(
        "immediate",
        vec![
            Attr::be32(IMMEDIATE_DREG, register),
            value(IMMEDIATE_DATA, bytes),
        ],
    )
}

/// `payload load 4b @ network header + 12 => reg 1`: `ip saddr`.
fn source_address() -> Attr {
    expression(
        "payload",
        vec![
            Attr::be32(PAYLOAD_DREG, REG_1),
            Attr::be32(PAYLOAD_BASE, NETWORK_HEADER),
            Attr::be32(PAYLOAD_OFFSET, SADDR.0),
            Attr::be32(PAYLOAD_LEN, SADDR.1),
        ],
    )
}

/// `cmp eq reg 1 DATA`.
fn equals(bytes: Vec<u8>) -> Attr {
    expression(
        "cmp",
        vec![
            Attr::be32(CMP_SREG, REG_1),
            Attr::be32(CMP_OP, CMP_EQ),
            value(CMP_DATA, bytes),
        ],
    )
}

/// A rule's expressions, as nft compiles its text.
pub fn expressions(rule: &Rule) -> Vec<Attr> {
    match rule {
        Rule::Verdict(to) => vec![immediate_verdict(to)],
        Rule::Remembered { set, chain } => vec![
            source_address(),
            expression(
                "lookup",
                vec![
                    Attr::be32(LOOKUP_SREG, REG_1),
                    Attr::string(LOOKUP_SET, set),
                ],
            ),
            immediate_verdict(&Verdict::Goto(chain.clone())),
        ],
        Rule::Random { modulus, chain } => vec![
            expression(
                "numgen",
                vec![
                    Attr::be32(NG_DREG, REG_1),
                    Attr::be32(NG_MODULUS, *modulus),
                    Attr::be32(NG_TYPE, NG_RANDOM),
                    Attr::be32(NG_OFFSET, 0),
                ],
            ),
            equals(0u32.to_be_bytes().to_vec()),
            immediate_verdict(&Verdict::Goto(chain.clone())),
        ],
        Rule::From { source, chain } => vec![
            source_address(),
            equals(source.octets().to_vec()),
            immediate_verdict(&Verdict::Jump(chain.clone())),
        ],
        Rule::Remember { set } => vec![
            source_address(),
            expression(
                "dynset",
                vec![
                    Attr::be32(DYNSET_SREG_KEY, REG_1),
                    Attr::be32(DYNSET_OP, DYNSET_UPDATE),
                    Attr::string(DYNSET_SET_NAME, set),
                ],
            ),
        ],
        Rule::Dnat { protocol, to } => vec![
            expression(
                "meta",
                vec![
                    Attr::be32(META_KEY, META_L4PROTO),
                    Attr::be32(META_DREG, REG_1),
                ],
            ),
            equals(vec![protocol_number(*protocol)]),
            immediate_data(REG_1, to.ip.octets().to_vec()),
            immediate_data(REG_2, to.port.to_be_bytes().to_vec()),
            expression(
                "nat",
                vec![
                    Attr::be32(NAT_TYPE, NAT_DNAT),
                    Attr::be32(NAT_FAMILY, u32::from(NFPROTO_IPV4)),
                    Attr::be32(NAT_REG_ADDR_MIN, REG_1),
                    Attr::be32(NAT_REG_PROTO_MIN, REG_2),
                    Attr::be32(NAT_FLAGS, NAT_RANGE_PROTO_SPECIFIED),
                ],
            ),
        ],
    }
}

/// A `daddr . l4proto . dport` key: each field in a 4-byte register of
/// its own, zero-padded, as a concatenation is laid out.
fn service_key(address: &Address) -> Vec<u8> {
    let mut key = Vec::with_capacity(12);
    key.extend_from_slice(&address.ip.octets());
    key.extend_from_slice(&[protocol_number(address.protocol), 0, 0, 0]);
    key.extend_from_slice(&address.port.to_be_bytes());
    key.extend_from_slice(&[0, 0]);
    key
}

/// A set-element message for one element of `set`.
fn element(message: u8, set: &str, element: Vec<Attr>) -> NfMessage {
    NfMessage::nftables(
        message,
        vec![
            Attr::string(SET_ELEM_LIST_TABLE, TABLE),
            Attr::string(SET_ELEM_LIST_SET, set),
            nested(SET_ELEM_LIST_ELEMENTS, vec![nested(LIST_ELEM, element)]),
        ],
    )
}

/// An element's key.
fn key(address: &Address) -> Attr {
    value(SET_ELEM_KEY, service_key(address))
}

/// `op` as its message numbered `sequence`, and the flags nft gives it:
/// `NLM_F_CREATE` to add (without `NLM_F_EXCL`: an existing one is no
/// error, as `add` in nft), `NLM_F_APPEND` for a rule (at the chain's
/// end).
pub fn encode_op(op: &Op, sequence: u32) -> (NfMessage, u16) {
    let table = || Attr::string(CHAIN_TABLE, TABLE);
    match op {
        Op::AddSet { name, timeout } => (
            NfMessage::nftables(
                msg::NEWSET,
                vec![
                    Attr::string(SET_TABLE, TABLE),
                    Attr::string(SET_NAME, name),
                    Attr::be32(SET_FLAGS, SET_DYNAMIC_TIMEOUT),
                    Attr::be32(SET_KEY_TYPE, TYPE_IPADDR),
                    Attr::be32(SET_KEY_LEN, 4),
                    Attr::be32(SET_ID, sequence),
                    Attr::be64(SET_TIMEOUT, u64::from(*timeout) * 1000),
                    Attr::Value(SET_USERDATA, SET_USERDATA_KEY_BIG_ENDIAN.to_vec()),
                ],
            ),
            NLM_F_CREATE,
        ),
        Op::AddChain(chain) => (
            NfMessage::nftables(
                msg::NEWCHAIN,
                vec![table(), Attr::string(CHAIN_NAME, chain)],
            ),
            NLM_F_CREATE,
        ),
        Op::DeleteChain(chain) => (
            NfMessage::nftables(
                msg::DELCHAIN,
                vec![table(), Attr::string(CHAIN_NAME, chain)],
            ),
            0,
        ),
        // DELRULE naming a chain and no rule handle: all its rules.
        Op::FlushChain(chain) => (
            NfMessage::nftables(
                msg::DELRULE,
                vec![
                    Attr::string(RULE_TABLE, TABLE),
                    Attr::string(RULE_CHAIN, chain),
                ],
            ),
            0,
        ),
        Op::AddRule { chain, rule } => (
            NfMessage::nftables(
                msg::NEWRULE,
                vec![
                    Attr::string(RULE_TABLE, TABLE),
                    Attr::string(RULE_CHAIN, chain),
                    nested(RULE_EXPRESSIONS, expressions(rule)),
                ],
            ),
            NLM_F_CREATE | NLM_F_APPEND,
        ),
        Op::DeleteSet(set) => (
            NfMessage::nftables(
                msg::DELSET,
                vec![Attr::string(SET_TABLE, TABLE), Attr::string(SET_NAME, set)],
            ),
            0,
        ),
        Op::AddServiceIp(address, to) => (
            element(
                msg::NEWSETELEM,
                SERVICE_IPS,
                vec![key(address), verdict(SET_ELEM_DATA, to)],
            ),
            NLM_F_CREATE,
        ),
        Op::DeleteServiceIp(address) => {
            (element(msg::DELSETELEM, SERVICE_IPS, vec![key(address)]), 0)
        }
        Op::AddNoEndpoints(address) => (
            element(msg::NEWSETELEM, NO_ENDPOINTS, vec![key(address)]),
            NLM_F_CREATE,
        ),
        Op::DeleteNoEndpoints(address) => (
            element(msg::DELSETELEM, NO_ENDPOINTS, vec![key(address)]),
            0,
        ),
    }
}

fn framed(message: NfMessage, flags: u16, sequence: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = sequence;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    message.finalize();
    serialize(&message)
}

/// `ops` as one batch: the begin numbered `first`, the i-th operation
/// `first + 1 + i` (so an answer's sequence number names its operation,
/// see [`operation_of`]), the end after them.
pub fn batch(ops: &[Op], first: u32) -> Vec<u8> {
    let mut bytes = framed(NfMessage::batch(MSG_BATCH_BEGIN), 0, first);
    for (i, op) in ops.iter().enumerate() {
        let sequence = first.wrapping_add(1).wrapping_add(i as u32);
        let (message, flags) = encode_op(op, sequence);
        bytes.extend(framed(message, flags | NLM_F_ACK, sequence));
    }
    let end = first.wrapping_add(1).wrapping_add(ops.len() as u32);
    bytes.extend(framed(NfMessage::batch(MSG_BATCH_END), 0, end));
    bytes
}

/// Which operation of a batch begun at `first` with `count` operations
/// the answer numbered `sequence` is about (None: the batch's begin or
/// end, or another batch).
pub fn operation_of(sequence: u32, first: u32, count: usize) -> Option<usize> {
    let index = sequence.wrapping_sub(first).checked_sub(1)? as usize;
    (index < count).then_some(index)
}

/// What an errno from the kernel means for `op`, in the words of what
/// it tried.
pub fn error_text(op: &Op, errno: i32) -> String {
    const EPERM: i32 = 1;
    const ENOENT: i32 = 2;
    const EEXIST: i32 = 17;
    const EINVAL: i32 = 22;
    const ENOSPC: i32 = 28;
    const EBUSY: i32 = 16;
    const ELOOP: i32 = 40;
    const EOPNOTSUPP: i32 = 95;
    let meaning = match (errno, op) {
        (EPERM, _) => Some("permission denied (CAP_NET_ADMIN is needed)"),
        (ENOENT, Op::AddRule { .. }) => {
            Some("the table, the chain, or a chain or set the rule names does not exist")
        }
        (ENOENT, Op::AddServiceIp(..)) => {
            Some("the map, or the chain the element goes to, does not exist")
        }
        (ENOENT, _) => Some("no such table, chain, set or element"),
        (EEXIST, _) => Some("it exists already"),
        (EBUSY, _) => Some("still in use: a rule or element refers to it"),
        (ELOOP, _) => Some("the jump or goto would make a loop"),
        (ENOSPC, _) => Some("the set is full"),
        (EOPNOTSUPP, _) => Some("the kernel lacks an expression it needs (a module?)"),
        (EINVAL, _) => Some("invalid argument"),
        _ => None,
    };
    let system = std::io::Error::from_raw_os_error(errno);
    match meaning {
        Some(meaning) => format!("{op}: {meaning} ({system})"),
        None => format!("{op}: {system}"),
    }
}

#[cfg(test)]
mod tests;
