//! How one write is laid out on disk: a pure encoding, tested without I/O.
//!
//! A record is stored under its revision (8 bytes, big-endian, so the
//! backend's key order is revision order) and reads
//! `[format 1][kind][create_revision u64][key length u32][key][value]`.

use bytes::Bytes;

use crate::EventKind;

const FORMAT: u8 = 1;
const HEADER: usize = 1 + 1 + 8 + 4;

/// One write as the backend keeps it. The value of a deletion is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub kind: EventKind,
    pub key: String,
    pub create_revision: u64,
    pub value: Bytes,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.key.len() + self.value.len());
        out.push(FORMAT);
        out.push(match self.kind {
            EventKind::Added => 0,
            EventKind::Modified => 1,
            EventKind::Deleted => 2,
        });
        out.extend_from_slice(&self.create_revision.to_be_bytes());
        out.extend_from_slice(&(self.key.len() as u32).to_be_bytes());
        out.extend_from_slice(self.key.as_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    /// Decodes a record, saying what is wrong with one that is not valid.
    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        if bytes.len() < HEADER {
            return Err(format!("record of {} bytes is too short", bytes.len()));
        }
        if bytes[0] != FORMAT {
            return Err(format!("unknown record format {}", bytes[0]));
        }
        let kind = match bytes[1] {
            0 => EventKind::Added,
            1 => EventKind::Modified,
            2 => EventKind::Deleted,
            other => return Err(format!("unknown record kind {other}")),
        };
        let create_revision = u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes"));
        let key_len = u32::from_be_bytes(bytes[10..14].try_into().expect("4 bytes")) as usize;
        let rest = &bytes[HEADER..];
        if rest.len() < key_len {
            return Err(format!("key length {key_len} exceeds the record"));
        }
        let key = std::str::from_utf8(&rest[..key_len])
            .map_err(|e| format!("key is not UTF-8: {e}"))?
            .to_owned();
        Ok(Record {
            kind,
            key,
            create_revision,
            value: Bytes::copy_from_slice(&rest[key_len..]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        for kind in [EventKind::Added, EventKind::Modified, EventKind::Deleted] {
            let record = Record {
                kind,
                key: "/registry/pods/default/web-1".into(),
                create_revision: 42,
                value: Bytes::from_static(br#"{"kind":"Pod"}"#),
            };
            assert_eq!(Record::decode(&record.encode()), Ok(record));
        }
    }

    #[test]
    fn rejects_torn_and_foreign_bytes() {
        let record = Record {
            kind: EventKind::Added,
            key: "/a/b".into(),
            create_revision: 1,
            value: Bytes::new(),
        };
        let bytes = record.encode();
        assert!(Record::decode(&bytes[..HEADER - 1]).is_err());
        assert!(Record::decode(&bytes[..HEADER + 2]).is_err());
        let mut foreign = bytes.clone();
        foreign[0] = 9;
        assert!(Record::decode(&foreign).is_err());
        let mut bad_kind = bytes;
        bad_kind[1] = 7;
        assert!(Record::decode(&bad_kind).is_err());
    }
}
