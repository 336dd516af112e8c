//! Numbers written into byte buffers without the formatting machinery: the access log's fields
//! and the HTTP/1 server's `Content-Length` values and chunk sizes.

/// The two-digit decimal numbers 00..=99.
const PAIRS: [u8; 200] = {
    let mut out = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        out[2 * i] = b'0' + (i / 10) as u8;
        out[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    out
};

/// Appends `v` in decimal, two digits at a time.
pub(crate) fn decimal(buf: &mut Vec<u8>, v: u64) {
    if v < 10 {
        buf.push(b'0' + v as u8);
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = v;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + v as u8;
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends `v` in lower-case hexadecimal.
pub(crate) fn hex(buf: &mut Vec<u8>, v: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut v = v;
    loop {
        i -= 1;
        digits[i] = HEX[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_decimal_and_hex() {
        for v in [
            0,
            1,
            9,
            10,
            11,
            15,
            16,
            99,
            100,
            101,
            999,
            1000,
            65535,
            123_456_789,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            decimal(&mut buf, v);
            assert_eq!(buf, v.to_string().into_bytes(), "{v}");
            let mut buf = Vec::new();
            hex(&mut buf, v);
            assert_eq!(buf, format!("{v:x}").into_bytes(), "{v:x}");
        }
    }
}
