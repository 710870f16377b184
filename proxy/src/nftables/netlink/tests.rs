//! The codec against nft's own batch for the same operations
//! (`recorded/`), and a refusal read back to the operation it names. No
//! I/O: the kernel's side is in [`crate::nftables::socket`]'s tests.

use super::*;
use crate::model::{Backend, Protocol};
use crate::nftables::tests::text;
use crate::nla::tree;

const T: &str = "default/web/tcp/http";

fn svc() -> String {
    format!("svc-{T}")
}

fn ep() -> String {
    format!("ep-{T}__10.244.1.3/8080")
}

fn aff() -> String {
    format!("aff-{T}__10.244.1.3/8080__10800s")
}

fn address(last: u8, protocol: Protocol, port: u16) -> Address {
    Address {
        ip: std::net::Ipv4Addr::new(10, 96, 0, last),
        port,
        protocol,
    }
}

/// The operations of `recorded/batch.nft`, line by line.
fn recorded_ops() -> Vec<Op> {
    let rule = |chain: String, rule| Op::AddRule { chain, rule };
    let backend = Backend {
        ip: "10.244.1.3".parse().unwrap(),
        port: 8080,
    };
    let web = address(20, Protocol::Tcp, 80);
    let dns = address(21, Protocol::Udp, 53);
    vec![
        Op::AddSet {
            name: aff(),
            timeout: 10800,
        },
        Op::AddChain(svc()),
        Op::AddChain(ep()),
        rule(
            svc(),
            Rule::Verdict(Verdict::Jump("mark-for-masquerade".into())),
        ),
        rule(
            svc(),
            Rule::Remembered {
                set: aff(),
                chain: ep(),
            },
        ),
        rule(
            svc(),
            Rule::Random {
                modulus: 2,
                chain: ep(),
            },
        ),
        rule(svc(), Rule::Verdict(Verdict::Goto(ep()))),
        rule(
            ep(),
            Rule::From {
                source: backend.ip,
                chain: "mark-for-masquerade".into(),
            },
        ),
        rule(ep(), Rule::Remember { set: aff() }),
        rule(
            ep(),
            Rule::Dnat {
                protocol: Protocol::Tcp,
                to: backend,
            },
        ),
        Op::AddServiceIp(web, Verdict::Goto(svc())),
        Op::AddNoEndpoints(dns),
        Op::FlushChain(svc()),
        Op::DeleteServiceIp(web),
        Op::DeleteNoEndpoints(dns),
        Op::FlushChain(ep()),
        Op::DeleteChain(ep()),
        Op::DeleteSet(aff()),
    ]
}

fn recorded_batch() -> Vec<u8> {
    let hex: String = include_str!("../recorded/batch.hex")
        .split_whitespace()
        .collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// One message as the tests compare it: type, flags, sequence number,
/// nfgenmsg and the attribute tree.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    message_type: u16,
    flags: u16,
    sequence: u32,
    genmsg: Vec<u8>,
    attrs: Vec<Attr>,
}

fn decode(mut bytes: &[u8]) -> Vec<Decoded> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let length = u32::from_ne_bytes(bytes[..4].try_into().unwrap()) as usize;
        let message = &bytes[..length];
        out.push(Decoded {
            message_type: u16::from_ne_bytes(message[4..6].try_into().unwrap()),
            flags: u16::from_ne_bytes(message[6..8].try_into().unwrap()),
            sequence: u32::from_ne_bytes(message[8..12].try_into().unwrap()),
            genmsg: message[16..20].to_vec(),
            attrs: tree(&message[20..]).unwrap(),
        });
        bytes = &bytes[(length + 3) & !3..];
    }
    out
}

/// nft refers to a set by its transaction id as well as by its name; we
/// by its name only (see the module's doc): its
/// `NFTA_SET_ELEM_LIST_SET_ID`, `NFTA_LOOKUP_SET_ID` and
/// `NFTA_DYNSET_SET_ID` go (NEWSET's own id, 1 in nft's batch, is the
/// message's sequence number in ours: 1 as well).
fn without_set_ids(message: &mut Decoded) {
    let id = match (message.message_type & 0xff) as u8 {
        msg::NEWSETELEM | msg::DELSETELEM => Some(4),
        _ => None,
    };
    message
        .attrs
        .retain(|a| !matches!(a, Attr::Value(kind, _) if Some(*kind) == id));
    fn expressions(attrs: &mut [Attr]) {
        for attr in attrs {
            let Attr::Nested(_, inner) = attr else {
                continue;
            };
            let name = inner.iter().find_map(|a| match a {
                Attr::Value(EXPR_NAME, name) => Some(name.clone()),
                _ => None,
            });
            let id = match name.as_deref() {
                Some(b"lookup\0") => Some(4),
                Some(b"dynset\0") => Some(2),
                _ => None,
            };
            for data in inner.iter_mut() {
                if let (Attr::Nested(EXPR_DATA, data), Some(id)) = (data, id) {
                    data.retain(|a| !matches!(a, Attr::Value(kind, _) if *kind == id));
                }
            }
        }
    }
    for attr in &mut message.attrs {
        if let Attr::Nested(RULE_EXPRESSIONS, list) = attr {
            expressions(list);
        }
    }
}

#[test]
fn a_batch_is_the_one_nft_sends_but_for_set_ids_and_acks() {
    let ops = recorded_ops();
    // The operations are the recorded script's lines.
    let script = include_str!("../recorded/batch.nft");
    assert_eq!(text(&ops), script.lines().collect::<Vec<_>>());
    let mut expected = decode(&recorded_batch());
    let ours = decode(&batch(&ops, 0));
    assert_eq!(ours.len(), expected.len());
    for (i, (ours, expected)) in ours.iter().zip(expected.iter_mut()).enumerate() {
        without_set_ids(expected);
        // Every operation (not the batch's begin and end) asks an ack.
        if (1..=ops.len()).contains(&i) {
            expected.flags |= NLM_F_ACK;
        }
        assert_eq!(
            ours,
            expected,
            "message {i}: {}",
            script.lines().nth(i.wrapping_sub(1)).unwrap_or("begin/end")
        );
    }
}

#[test]
fn a_chain_is_added_by_name_and_a_flush_names_only_its_chain() {
    let (add, flags) = encode_op(&Op::AddChain("svc-x".into()), 1);
    assert_eq!(add.message_type, 10 << 8 | 3);
    assert_eq!(flags, NLM_F_CREATE);
    let mut bytes = vec![0; add.buffer_len()];
    add.serialize(&mut bytes);
    assert_eq!(
        bytes,
        [
            &[2, 0, 0, 0][..],
            &[16, 0, 1, 0],
            b"skiff-proxy\0",
            &[10, 0, 3, 0],
            b"svc-x\0\0\0"
        ]
        .concat()
    );
    let (flush, flags) = encode_op(&Op::FlushChain("svc-x".into()), 2);
    assert_eq!((flush.message_type & 0xff) as u8, msg::DELRULE);
    assert_eq!(flags, 0);
    assert_eq!(
        flush.attrs,
        [
            Attr::string(RULE_TABLE, TABLE),
            Attr::string(RULE_CHAIN, "svc-x")
        ]
    );
}

#[test]
fn a_dnat_loads_the_endpoint_into_two_registers() {
    let rule = Rule::Dnat {
        protocol: Protocol::Udp,
        to: Backend {
            ip: "10.244.1.7".parse().unwrap(),
            port: 53,
        },
    };
    let names: Vec<Vec<u8>> = expressions(&rule)
        .iter()
        .map(|e| match e {
            Attr::Nested(LIST_ELEM, inner) => match &inner[0] {
                Attr::Value(EXPR_NAME, name) => name.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            &b"meta\0"[..],
            b"cmp\0",
            b"immediate\0",
            b"immediate\0",
            b"nat\0"
        ]
    );
    // The comparison is of the one byte `meta l4proto` loads: UDP.
    assert_eq!(equals(vec![17]), expressions(&rule)[1]);
    assert_eq!(immediate_data(REG_2, vec![0, 53]), expressions(&rule)[3]);
}

#[test]
fn an_answer_names_its_operation_by_sequence_number() {
    assert_eq!(operation_of(10, 10, 3), None, "the begin");
    assert_eq!(operation_of(11, 10, 3), Some(0));
    assert_eq!(operation_of(13, 10, 3), Some(2));
    assert_eq!(operation_of(14, 10, 3), None, "the end");
    assert_eq!(operation_of(2, u32::MAX - 1, 5), Some(3), "wrapped");
    let op = Op::DeleteChain("ep-x".into());
    assert_eq!(
        error_text(&op, 16),
        "delete chain ip skiff-proxy ep-x: still in use: a rule or element refers to it (Device or resource busy (os error 16))"
    );
}
