//! CRC-32/ISO-HDLC (the zlib / PNG / Ethernet CRC: reflected polynomial 0xEDB88320,
//! initial value and final xor 0xFFFFFFFF), shared by the model blob and the frames.

/// 64-byte table of one nibble's CRC, built at compile time: two lookups per byte instead
/// of one in a 1 KiB table, which the firmware's flash budget cannot spare.
static CRC32_NIBBLE_TABLE: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 4 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        crc = CRC32_NIBBLE_TABLE[(crc & 0xf) as usize] ^ (crc >> 4);
        crc = CRC32_NIBBLE_TABLE[(crc & 0xf) as usize] ^ (crc >> 4);
    }
    !crc
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::crc32;
    use std::vec::Vec;

    #[test]
    fn matches_the_standard_check_value() {
        // The catalogue check value of CRC-32/ISO-HDLC for the ASCII digits 1..9.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Bit-at-a-time definition on a longer input with every byte value.
        let bytes: Vec<u8> = (0..=255u8).chain((0..300).map(|i| (i * 7) as u8)).collect();
        let mut slow = !0u32;
        for &b in &bytes {
            slow ^= u32::from(b);
            for _ in 0..8 {
                slow = if slow & 1 != 0 {
                    0xEDB8_8320 ^ (slow >> 1)
                } else {
                    slow >> 1
                };
            }
        }
        assert_eq!(crc32(&bytes), !slow);
    }
}
