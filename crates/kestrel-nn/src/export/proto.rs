//! A minimal protocol-buffers writer: enough of the wire format (varints, length-delimited
//! fields, 32-bit floats) to write ONNX models without a protobuf dependency.
//!
//! Messages are built bottom-up: a [`Message`] collects fields, and a nested message is written
//! as a length-delimited field holding the inner message's bytes.

/// Wire type of varint fields (int32, int64, enums).
const VARINT: u64 = 0;
/// Wire type of 32-bit fields (float).
const FIXED32: u64 = 5;
/// Wire type of length-delimited fields (string, bytes, messages).
const LEN: u64 = 2;

/// Appends `v` as a base-128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One protobuf message's encoded fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    bytes: Vec<u8>,
}

impl Message {
    /// An empty message.
    pub fn new() -> Self {
        Message::default()
    }

    fn key(&mut self, field: u32, wire: u64) {
        put_varint(&mut self.bytes, ((field as u64) << 3) | wire);
    }

    /// An `int64`/`int32`/enum field (negative values as ten-byte two's complement, as protobuf
    /// encodes them).
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, VARINT);
        put_varint(&mut self.bytes, v as u64);
        self
    }

    /// A `float` field.
    pub fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, FIXED32);
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `bytes` field.
    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, LEN);
        put_varint(&mut self.bytes, v.len() as u64);
        self.bytes.extend_from_slice(v);
        self
    }

    /// A `string` field.
    pub fn string(&mut self, field: u32, v: &str) -> &mut Self {
        self.bytes(field, v.as_bytes())
    }

    /// An embedded message field.
    pub fn message(&mut self, field: u32, m: &Message) -> &mut Self {
        self.bytes(field, &m.bytes)
    }

    /// The encoded message.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The encoded message so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// One decoded field of a message (tests read the written models back with it).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Field<'a> {
    /// A varint (negative `int64`s come back as their two's complement).
    Varint(u64),
    /// A `fixed32` (a `float`'s bits).
    Fixed32(u32),
    /// A length-delimited field: string, bytes or an embedded message.
    Bytes(&'a [u8]),
}

/// The `(field number, value)` pairs of an encoded message, in order; panics on anything but
/// the wire types [`Message`] writes.
#[cfg(test)]
pub(crate) fn decode(mut b: &[u8]) -> Vec<(u32, Field<'_>)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[0];
            *b = &b[1..];
            v |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                return v;
            }
            shift += 7;
        }
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let field = match key & 7 {
            VARINT => Field::Varint(varint(&mut b)),
            FIXED32 => {
                let v = u32::from_le_bytes(b[..4].try_into().unwrap());
                b = &b[4..];
                Field::Fixed32(v)
            }
            LEN => {
                let n = varint(&mut b) as usize;
                let (v, rest) = b.split_at(n);
                b = rest;
                Field::Bytes(v)
            }
            w => panic!("wire type {w}"),
        };
        out.push(((key >> 3) as u32, field));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of the protobuf encoding guide
    /// (<https://protobuf.dev/programming-guides/encoding/>).
    #[test]
    fn matches_the_encoding_guide() {
        // `message Test1 { int32 a = 1; }` with a = 150 is `08 96 01`.
        let mut m = Message::new();
        m.int(1, 150);
        assert_eq!(m.as_bytes(), [0x08, 0x96, 0x01]);
        // `message Test2 { string b = 2; }` with b = "testing" is `12 07 74 65 73 74 69 6e 67`.
        let mut m = Message::new();
        m.string(2, "testing");
        assert_eq!(
            m.as_bytes(),
            [0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67]
        );
        // `message Test3 { Test1 c = 3; }` with c.a = 150 is `1a 03 08 96 01`.
        let mut inner = Message::new();
        inner.int(1, 150);
        let mut m = Message::new();
        m.message(3, &inner);
        assert_eq!(m.as_bytes(), [0x1a, 0x03, 0x08, 0x96, 0x01]);
        // int32 -2 is ten bytes: `fe ff ff ff ff ff ff ff ff 01`.
        let mut m = Message::new();
        m.int(1, -2);
        assert_eq!(
            m.as_bytes(),
            [0x08, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        // float 1.0 as fixed32: key (2 << 3 | 5) then IEEE-754 little-endian.
        let mut m = Message::new();
        m.float(2, 1.0);
        assert_eq!(m.as_bytes(), [0x15, 0x00, 0x00, 0x80, 0x3f]);
        // The reader gives back what the guide's bytes hold.
        let test3 = [0x1a, 0x03, 0x08, 0x96, 0x01];
        assert_eq!(decode(&test3), [(3, Field::Bytes(&[0x08, 0x96, 0x01]))]);
        assert_eq!(decode(&test3[2..]), [(1, Field::Varint(150))]);
        let mut m = Message::new();
        m.int(1, -2).float(2, 1.0).string(3, "testing");
        assert_eq!(
            decode(m.as_bytes()),
            [
                (1, Field::Varint(-2i64 as u64)),
                (2, Field::Fixed32(1.0f32.to_bits())),
                (3, Field::Bytes(b"testing")),
            ]
        );
    }

    #[test]
    fn long_varints() {
        let mut v = Vec::new();
        put_varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
        v.clear();
        put_varint(&mut v, u64::MAX);
        assert_eq!(v.len(), 10);
        assert_eq!(v[9], 0x01);
    }
}
