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

/// The numbers 0..=255 in decimal: `[length, digits…]`.
const OCTETS: [[u8; 4]; 256] = {
    let mut out = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let (h, t, o) = ((i / 100) as u8, (i / 10 % 10) as u8, (i % 10) as u8);
        out[i] = if i >= 100 {
            [3, b'0' + h, b'0' + t, b'0' + o]
        } else if i >= 10 {
            [2, b'0' + t, b'0' + o, 0]
        } else {
            [1, b'0' + o, 0, 0]
        };
        i += 1;
    }
    out
};

/// Appends an IPv4 socket address (`a.b.c.d:port`) in one copy. Each octet's three table
/// bytes are copied whole (a fixed-size copy, not a call to `memcpy`) and the position moves by
/// its length; the port's digits are written in place.
pub(crate) fn ipv4(buf: &mut Vec<u8>, addr: std::net::SocketAddrV4) {
    // 21 bytes at most; room for the last octet's whole three-byte copy past its length.
    let mut text = [0u8; 24];
    let mut n = 0;
    for (i, octet) in addr.ip().octets().into_iter().enumerate() {
        if i > 0 {
            text[n] = b'.';
            n += 1;
        }
        let [len, digits @ ..] = OCTETS[usize::from(octet)];
        text[n..n + 3].copy_from_slice(&digits);
        n += usize::from(len);
    }
    text[n] = b':';
    n += 1;
    let port = addr.port();
    let len = match port {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => 5,
    };
    let mut rest = port;
    for slot in text[n..n + len].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    buf.extend_from_slice(&text[..n + len]);
}

/// Lower-case hexadecimal digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// The two lower-case hex digits of each byte value.
static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut out = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        out[b] = [HEX[b >> 4], HEX[b & 15]];
        b += 1;
    }
    out
};

/// The two lower-case hex digits of `b`.
pub(crate) fn hex_pair(b: u8) -> [u8; 2] {
    HEX_PAIRS[usize::from(b)]
}

/// Appends `v` in lower-case hexadecimal.
pub(crate) fn hex(buf: &mut Vec<u8>, v: u64) {
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

    #[test]
    fn hex_pairs_are_the_byte_in_two_digits() {
        for b in 0..=255u8 {
            assert_eq!(hex_pair(b), format!("{b:02x}").as_bytes(), "{b}");
        }
    }

    #[test]
    fn ipv4_addresses_are_written_like_display() {
        for text in [
            "0.0.0.0:0",
            "127.0.0.1:8080",
            "9.10.99.100:65535",
            "255.255.255.255:1",
            "192.168.1.254:443",
        ] {
            let addr: std::net::SocketAddrV4 = text.parse().expect("addr");
            let mut buf = b"x".to_vec();
            ipv4(&mut buf, addr);
            assert_eq!(buf, format!("x{addr}").into_bytes());
        }
        // Every octet value in every position, and every port length at its edges.
        let ports = [0, 9, 10, 99, 100, 999, 1000, 9999, 10000, 65535];
        for octet in 0..=255u8 {
            for (i, port) in ports.into_iter().enumerate() {
                let mut ip = [7u8; 4];
                ip[i % 4] = octet;
                let addr = std::net::SocketAddrV4::new(ip.into(), port);
                let mut buf = Vec::new();
                ipv4(&mut buf, addr);
                assert_eq!(buf, addr.to_string().into_bytes());
            }
        }
    }
}
