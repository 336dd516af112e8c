//! Comparing the names and tokens of a head with lower-case words, eight bytes at a time.

/// Whether `bytes` is `lower` in any case, for `bytes` taken from a tokenized head (a field
/// name, or a token of a field value: no control characters) and `lower` made of lower-case
/// letters, digits and `-`.
///
/// Setting bit 5 of each byte (`| 0x20`) turns an upper-case letter into its lower case and
/// leaves lower-case letters, digits and `-` as they are; the only other bytes it turns into
/// one of `lower`'s are control characters (CR into `-`, 0x10–0x19 into digits), which a
/// tokenized head does not have where these comparisons look. So the test is exact there, and
/// it takes one comparison for each eight bytes instead of one for each byte.
pub fn is_lower(bytes: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    let n = lower.len();
    if bytes.len() != n {
        return false;
    }
    if n < 8 {
        return bytes.iter().zip(lower).all(|(b, l)| (b | 0x20) == *l);
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        if let Some(part) = s.get(at..at + 8) {
            w.copy_from_slice(part);
        }
        u64::from_le_bytes(w)
    };
    let mut at = 0;
    while at + 8 < n {
        if word(bytes, at) | CASE != word(lower, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes (overlapping the word before when `n` is not a multiple of 8).
    word(bytes, n - 8) | CASE == word(lower, n - 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_as_eq_ignore_ascii_case_on_bytes_of_tokenized_heads() {
        let words: [&[u8]; 9] = [
            b"te",
            b"date",
            b"upgrade",
            b"chunked",
            b"connection",
            b"keep-alive",
            b"content-length",
            b"transfer-encoding",
            b"proxy-authorization",
        ];
        // Every byte a name or a value token may hold: tab, visible ASCII, obs-text.
        let allowed: Vec<u8> = std::iter::once(b'\t')
            .chain(0x20..=0x7e)
            .chain(0x80..=0xff)
            .collect();
        for lower in words {
            let upper = lower.to_ascii_uppercase();
            assert!(is_lower(lower, lower));
            assert!(is_lower(&upper, lower));
            // One byte changed to each other allowed byte, at each place.
            for at in 0..lower.len() {
                for &b in &allowed {
                    let mut other = lower.to_vec();
                    other[at] = b;
                    assert_eq!(
                        is_lower(&other, lower),
                        other.eq_ignore_ascii_case(lower),
                        "{:?} against {:?}",
                        String::from_utf8_lossy(&other),
                        String::from_utf8_lossy(lower)
                    );
                }
            }
            // Other lengths never match.
            assert!(!is_lower(&lower[1..], lower));
            let longer = [lower, b"x"].concat();
            assert!(!is_lower(&longer, lower));
        }
    }
}
