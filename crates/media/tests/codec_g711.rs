//! G.711 against a reference: the ITU-T G.191 (Software Tool Library) procedure,
//! re-written here bit by bit as the oracle, for every 16-bit input and every code.

use media::codec::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode};

/// G.191 `ulaw_compress`: one's-complement magnitude, bias 33, exponent by bit count.
fn reference_ulaw_compress(x: i16) -> u8 {
    let x = i32::from(x);
    let mut absno = if x < 0 {
        ((!x) >> 2) + 33
    } else {
        (x >> 2) + 33
    };
    if absno > 0x1FFF {
        absno = 0x1FFF;
    }
    let mut i = absno >> 6;
    let mut segno = 1;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high_nibble = 0x0008 - segno;
    let low_nibble = 0x000F - ((absno >> segno) & 0x000F);
    let mut code = (high_nibble << 4) | low_nibble;
    if x >= 0 {
        code |= 0x0080;
    }
    code as u8
}

/// G.191 `ulaw_expand`.
fn reference_ulaw_expand(code: u8) -> i16 {
    let sign = if code < 0x80 { -1 } else { 1 };
    let mantissa = !i32::from(code);
    let exponent = (mantissa >> 4) & 0x07;
    let segment = exponent + 1;
    let mantissa = mantissa & 0x0F;
    let step = 4 << segment;
    (sign * ((0x0080 << exponent) + step * mantissa + step / 2 - 4 * 33)) as i16
}

/// G.191 `alaw_compress`: one's-complement magnitude, exponent by shifting.
fn reference_alaw_compress(x: i16) -> u8 {
    let x = i32::from(x);
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
    if ix > 15 {
        let mut iexp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            iexp += 1;
        }
        ix -= 16;
        ix += iexp << 4;
    }
    if x >= 0 {
        ix |= 0x0080;
    }
    (ix ^ 0x0055) as u8
}

/// G.191 `alaw_expand`.
fn reference_alaw_expand(code: u8) -> i16 {
    let ix = (i32::from(code) ^ 0x0055) & 0x007F;
    let iexp = ix >> 4;
    let mut mant = ix & 0x000F;
    if iexp > 0 {
        mant += 16;
    }
    mant = (mant << 4) + 0x0008;
    if iexp > 1 {
        mant <<= iexp - 1;
    }
    (if code > 127 { mant } else { -mant }) as i16
}

#[test]
fn ulaw_encode_matches_reference_for_all_inputs() {
    for x in i16::MIN..=i16::MAX {
        assert_eq!(ulaw_encode(x), reference_ulaw_compress(x), "input {x}");
    }
}

#[test]
fn alaw_encode_matches_reference_for_all_inputs() {
    for x in i16::MIN..=i16::MAX {
        assert_eq!(alaw_encode(x), reference_alaw_compress(x), "input {x}");
    }
}

#[test]
fn decode_matches_reference_for_all_codes() {
    for code in 0..=255u8 {
        assert_eq!(
            ulaw_decode(code),
            reference_ulaw_expand(code),
            "µ-law code {code:#04x}"
        );
        assert_eq!(
            alaw_decode(code),
            reference_alaw_expand(code),
            "A-law code {code:#04x}"
        );
    }
}

#[test]
fn well_known_code_points() {
    // Silence and full scale as every G.711 implementation has them.
    assert_eq!(ulaw_encode(0), 0xFF);
    assert_eq!(ulaw_decode(0xFF), 0);
    assert_eq!(ulaw_decode(0x7F), 0);
    assert_eq!(ulaw_decode(0x80), 32124);
    assert_eq!(ulaw_decode(0x00), -32124);
    assert_eq!(alaw_encode(0), 0xD5);
    assert_eq!(alaw_decode(0xD5), 8);
    assert_eq!(alaw_decode(0x55), -8);
    assert_eq!(alaw_decode(0xAA), 32256);
    assert_eq!(alaw_decode(0x2A), -32256);
}

#[test]
fn decoded_values_are_fixed_points() {
    // Re-encoding a decoded value gives a code that decodes to the same value.
    for code in 0..=255u8 {
        let u = ulaw_decode(code);
        assert_eq!(ulaw_decode(ulaw_encode(u)), u);
        let a = alaw_decode(code);
        assert_eq!(alaw_decode(alaw_encode(a)), a);
    }
}

#[test]
fn quantisation_is_monotonic() {
    let (mut last_u, mut last_a) = (i16::MIN, i16::MIN);
    for x in i16::MIN..=i16::MAX {
        let (u, a) = (ulaw_decode(ulaw_encode(x)), alaw_decode(alaw_encode(x)));
        assert!(u >= last_u && a >= last_a, "non-monotonic at {x}");
        (last_u, last_a) = (u, a);
    }
}
