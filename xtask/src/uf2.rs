//! UF2 images (Microsoft's USB flashing format) for the XIAO's Adafruit nRF52 bootloader:
//! double-tap reset, a drive appears, copy the `.uf2` file onto it.
//!
//! A UF2 file is a sequence of 512-byte blocks, each carrying 256 bytes for one flash
//! address (the bootloader writes 256-byte aligned pieces):
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `0x0A324655` ("UF2\n") |
//! | 4 | magic `0x9E5D5157` |
//! | 8 | flags: `0x2000` = the family id field is present |
//! | 12 | target flash address |
//! | 16 | payload bytes (256) |
//! | 20 | block number, from 0 |
//! | 24 | number of blocks in the file |
//! | 28 | family id: `0xADA52840` for the nRF52840 |
//! | 32 | payload, zero-padded to 476 bytes |
//! | 508 | magic `0x0AB16F30` |
//!
//! All integers little-endian. Gaps inside a 256-byte page are filled with `0xFF`
//! (erased flash), so writing them changes nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};

use crate::firmware::{self, Board, Region};
use crate::flash;

pub const MAGIC_START0: u32 = 0x0A32_4655;
pub const MAGIC_START1: u32 = 0x9E5D_5157;
pub const MAGIC_END: u32 = 0x0AB1_6F30;
pub const FLAG_FAMILY_ID_PRESENT: u32 = 0x0000_2000;
/// The family id Adafruit's nRF52840 bootloaders accept.
pub const FAMILY_NRF52840: u32 = 0xADA5_2840;
pub const BLOCK_LEN: usize = 512;
pub const PAYLOAD_LEN: usize = 256;
const HEADER_LEN: usize = 32;

/// Bytes to put at an absolute flash address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub address: u32,
    pub bytes: Vec<u8>,
}

impl Chunk {
    fn end(&self) -> u64 {
        u64::from(self.address) + self.bytes.len() as u64
    }
}

/// One decoded block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub flags: u32,
    pub address: u32,
    pub payload: Vec<u8>,
    pub block_no: u32,
    pub num_blocks: u32,
    pub family_id: u32,
}

/// Encodes `chunks` (any order, not overlapping) as UF2 blocks of [`PAYLOAD_LEN`] bytes at
/// 256-byte aligned addresses, in ascending address order.
pub fn encode(chunks: &[Chunk], family_id: u32) -> Result<Vec<u8>> {
    ensure!(
        chunks.iter().any(|c| !c.bytes.is_empty()),
        "nothing to write into the UF2 image"
    );
    let mut sorted: Vec<&Chunk> = chunks.iter().filter(|c| !c.bytes.is_empty()).collect();
    sorted.sort_by_key(|c| c.address);
    for pair in sorted.windows(2) {
        ensure!(
            pair[0].end() <= u64::from(pair[1].address),
            "UF2: bytes at {:#x}..{:#x} overlap bytes at {:#x}",
            pair[0].address,
            pair[0].end(),
            pair[1].address
        );
    }
    let mut pages: BTreeMap<u32, [u8; PAYLOAD_LEN]> = BTreeMap::new();
    for chunk in &sorted {
        ensure!(
            chunk.end() <= 1 << 32,
            "UF2: bytes at {:#x} run past the 32-bit address space",
            chunk.address
        );
        for (i, &byte) in chunk.bytes.iter().enumerate() {
            let address = chunk.address + i as u32;
            let page = address & !(PAYLOAD_LEN as u32 - 1);
            pages.entry(page).or_insert([0xFF; PAYLOAD_LEN])[(address - page) as usize] = byte;
        }
    }
    let num_blocks = pages.len() as u32;
    let mut out = Vec::with_capacity(pages.len() * BLOCK_LEN);
    for (block_no, (address, payload)) in pages.iter().enumerate() {
        let mut block = [0u8; BLOCK_LEN];
        let words = [
            MAGIC_START0,
            MAGIC_START1,
            FLAG_FAMILY_ID_PRESENT,
            *address,
            PAYLOAD_LEN as u32,
            block_no as u32,
            num_blocks,
            family_id,
        ];
        for (k, w) in words.iter().enumerate() {
            block[4 * k..4 * k + 4].copy_from_slice(&w.to_le_bytes());
        }
        block[HEADER_LEN..HEADER_LEN + PAYLOAD_LEN].copy_from_slice(payload);
        block[BLOCK_LEN - 4..].copy_from_slice(&MAGIC_END.to_le_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

/// Parses a UF2 file; every block must carry all three magics and a payload that fits.
pub fn decode(bytes: &[u8]) -> Result<Vec<Block>> {
    ensure!(
        !bytes.is_empty() && bytes.len().is_multiple_of(BLOCK_LEN),
        "UF2: {} bytes is not a whole number of {BLOCK_LEN}-byte blocks",
        bytes.len()
    );
    let word = |b: &[u8], k: usize| u32::from_le_bytes(b[4 * k..4 * k + 4].try_into().unwrap());
    bytes
        .chunks_exact(BLOCK_LEN)
        .enumerate()
        .map(|(i, b)| {
            ensure!(
                word(b, 0) == MAGIC_START0
                    && word(b, 1) == MAGIC_START1
                    && word(b, 127) == MAGIC_END,
                "UF2 block {i}: bad magic"
            );
            let len = word(b, 4) as usize;
            ensure!(
                len <= BLOCK_LEN - HEADER_LEN - 4,
                "UF2 block {i}: payload of {len} bytes"
            );
            Ok(Block {
                flags: word(b, 2),
                address: word(b, 3),
                payload: b[HEADER_LEN..HEADER_LEN + len].to_vec(),
                block_no: word(b, 5),
                num_blocks: word(b, 6),
                family_id: word(b, 7),
            })
        })
        .collect()
}

/// The bytes an ELF (32-bit, little-endian) puts in flash: every allocated section with
/// contents (`.vector_table`, `.text`, `.rodata`, `.data`'s initial values …), at its load
/// address (from the `PT_LOAD` segment that holds it). Sections, not segments: the linker
/// may also map the ELF headers into a segment of their own below the first section
/// (0x20000 on the XIAO), and those bytes must not be written.
pub fn load_sections(elf: &[u8]) -> Result<Vec<Chunk>> {
    let segments = crate::elf::load_segments(elf)?;
    let mut chunks = Vec::new();
    for (i, section) in crate::elf::sections(elf)?.iter().enumerate() {
        let (addr, offset, size) = (section.addr, section.offset, section.size);
        if section.flags & crate::elf::SHF_ALLOC == 0
            || section.kind == crate::elf::SHT_NOBITS
            || size == 0
        {
            continue;
        }
        let end = u64::from(addr) + u64::from(size);
        let &(vaddr, paddr, _) = segments
            .iter()
            .find(|&&(v, _, m)| addr >= v && end <= u64::from(v) + u64::from(m))
            .with_context(|| format!("ELF section {i} at {addr:#x} is in no loadable segment"))?;
        let bytes = elf
            .get(offset as usize..offset as usize + size as usize)
            .with_context(|| format!("ELF section {i} runs past the end of the file"))?;
        chunks.push(Chunk {
            address: paddr + (addr - vaddr),
            bytes: bytes.to_vec(),
        });
    }
    ensure!(!chunks.is_empty(), "the ELF has no loadable bytes");
    Ok(chunks)
}

/// Fails unless every chunk lies inside one of `allowed` (the application's flash and the
/// model region): a UF2 block anywhere else could overwrite the SoftDevice or the
/// bootloader.
pub fn check_within(chunks: &[Chunk], allowed: &[(&str, Region)]) -> Result<()> {
    for c in chunks {
        let inside = allowed
            .iter()
            .any(|(_, r)| u64::from(c.address) >= r.origin && c.end() <= r.origin + r.length);
        if !inside {
            let regions: Vec<String> = allowed
                .iter()
                .map(|(name, r)| format!("{name} {:#x}..{:#x}", r.origin, r.origin + r.length))
                .collect();
            bail!(
                "bytes at {:#x}..{:#x} lie outside {}",
                c.address,
                c.end(),
                regions.join(" and ")
            );
        }
    }
    Ok(())
}

#[derive(clap::Args, Debug, Clone)]
pub struct Uf2Args {
    /// The board (only the XIAO has a UF2 bootloader).
    #[arg(long, value_enum)]
    pub board: Board,
    /// Model blob for the model region (default: the first `models/*.vscq`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Only the model region: replaces the encoder, keeps the firmware.
    #[arg(long)]
    pub model_only: bool,
    /// Output file (default: target/firmware/<board>[-model].uf2).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `cargo xtask uf2 --board xiao-sense [--model FILE] [--model-only]`.
pub fn run(args: &Uf2Args) -> Result<()> {
    ensure!(
        args.board == Board::XiaoSense,
        "{} has no UF2 bootloader; flash it with `cargo xtask flash --board {}`",
        args.board.name(),
        args.board.name()
    );
    let memory = args.board.memory()?;
    let model_path = flash::model_path(args.model.as_deref())?;
    let blob = fs::read(&model_path).with_context(|| model_path.display().to_string())?;
    let model = flash::model_image(&blob, memory.model, &model_path)?;
    let mut chunks = vec![model];
    if !args.model_only {
        firmware::build_board(args.board)?;
        let elf_path = args.board.elf();
        let elf = fs::read(&elf_path).with_context(|| elf_path.display().to_string())?;
        chunks.extend(load_sections(&elf).with_context(|| elf_path.display().to_string())?);
    }
    check_within(
        &chunks,
        &[
            ("application flash", memory.flash),
            ("model region", memory.model),
        ],
    )?;
    let image = encode(&chunks, FAMILY_NRF52840)?;
    // Read the image back as the bootloader will.
    let blocks = decode(&image)?;
    ensure!(
        blocks
            .iter()
            .enumerate()
            .all(|(i, b)| b.block_no == i as u32
                && b.num_blocks == blocks.len() as u32
                && b.family_id == FAMILY_NRF52840
                && b.flags == FLAG_FAMILY_ID_PRESENT),
        "the UF2 image does not read back"
    );
    let out = args.out.clone().unwrap_or_else(|| {
        firmware::target_dir().join(format!(
            "{}{}.uf2",
            args.board.name(),
            if args.model_only { "-model" } else { "" }
        ))
    });
    xtask::write_atomic(&out, &image)?;
    println!(
        "{}: {} blocks ({} bytes) at {:#x}.. ({}model {})",
        out.display(),
        image.len() / BLOCK_LEN,
        image.len(),
        chunks.iter().map(|c| c.address).min().unwrap_or(0),
        if args.model_only { "" } else { "firmware + " },
        model_path.display()
    );
    println!(
        "copy it onto the board: double-tap its reset button, a drive named XIAO-SENSE \
         appears, then  cp {} /media/$USER/XIAO-SENSE/",
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(block: &[u8], k: usize) -> u32 {
        u32::from_le_bytes(block[4 * k..4 * k + 4].try_into().unwrap())
    }

    #[test]
    fn blocks_carry_magics_addresses_numbers_and_the_family() {
        let firmware = Chunk {
            address: 0x27000,
            bytes: (0..600u32).map(|i| i as u8).collect(),
        };
        let model = Chunk {
            address: 0xAD000,
            bytes: vec![0x5A; 256],
        };
        let image = encode(&[model.clone(), firmware.clone()], FAMILY_NRF52840).unwrap();
        // 600 bytes → 3 pages; 256 bytes → 1 page.
        assert_eq!(image.len(), 4 * BLOCK_LEN);
        for (i, block) in image.chunks_exact(BLOCK_LEN).enumerate() {
            assert_eq!(word(block, 0), 0x0A32_4655);
            assert_eq!(word(block, 1), 0x9E5D_5157);
            assert_eq!(word(block, 2), 0x2000);
            assert_eq!(word(block, 4), 256);
            assert_eq!(word(block, 5), i as u32);
            assert_eq!(word(block, 6), 4);
            assert_eq!(word(block, 7), 0xADA5_2840);
            assert_eq!(word(block, 127), 0x0AB1_6F30);
            // The data area past the payload is zero.
            assert!(block[32 + 256..508].iter().all(|&b| b == 0));
        }
        let addresses: Vec<u32> = image.chunks_exact(BLOCK_LEN).map(|b| word(b, 3)).collect();
        assert_eq!(addresses, [0x27000, 0x27100, 0x27200, 0xAD000]);
        let blocks = decode(&image).unwrap();
        let mut firmware_back: Vec<u8> =
            blocks[..3].iter().flat_map(|b| b.payload.clone()).collect();
        // The last firmware page is padded with erased flash.
        assert!(firmware_back[600..].iter().all(|&b| b == 0xFF));
        firmware_back.truncate(600);
        assert_eq!(firmware_back, firmware.bytes);
        assert_eq!(blocks[3].payload, model.bytes);
    }

    #[test]
    fn unaligned_bytes_land_at_their_address_with_erased_fill() {
        let image = encode(
            &[Chunk {
                address: 0x27010,
                bytes: vec![1; 300],
            }],
            FAMILY_NRF52840,
        )
        .unwrap();
        let blocks = decode(&image).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!((blocks[0].address, blocks[1].address), (0x27000, 0x27100));
        assert!(blocks[0].payload[..0x10].iter().all(|&b| b == 0xFF));
        assert!(blocks[0].payload[0x10..].iter().all(|&b| b == 1));
        let end = 0x27010 + 300 - 0x27100;
        assert!(blocks[1].payload[..end].iter().all(|&b| b == 1));
        assert!(blocks[1].payload[end..].iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn two_chunks_sharing_a_page_share_one_block() {
        let image = encode(
            &[
                Chunk {
                    address: 0x1000,
                    bytes: vec![7; 16],
                },
                Chunk {
                    address: 0x1080,
                    bytes: vec![9; 16],
                },
            ],
            FAMILY_NRF52840,
        )
        .unwrap();
        let blocks = decode(&image).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].payload[0x80], 9);
        assert_eq!(blocks[0].payload[0x20], 0xFF);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let overlap = encode(
            &[
                Chunk {
                    address: 0x1000,
                    bytes: vec![0; 32],
                },
                Chunk {
                    address: 0x1010,
                    bytes: vec![0; 4],
                },
            ],
            FAMILY_NRF52840,
        )
        .unwrap_err();
        assert!(overlap.to_string().contains("overlap"), "{overlap}");
        assert!(encode(&[], FAMILY_NRF52840).is_err());
        let wrap = Chunk {
            address: u32::MAX - 3,
            bytes: vec![0; 8],
        };
        assert!(encode(&[wrap], FAMILY_NRF52840).is_err());
        assert!(decode(&[0u8; 100]).is_err());
        let mut image = encode(
            &[Chunk {
                address: 0,
                bytes: vec![1],
            }],
            FAMILY_NRF52840,
        )
        .unwrap();
        image[508] ^= 1;
        assert!(decode(&image).unwrap_err().to_string().contains("magic"));
    }

    /// A minimal ELF32: the headers mapped in a segment of their own (as lld does), a
    /// code section, `.data` whose load address (in flash) differs from its run address
    /// (RAM), `.bss` (no bytes) and a non-allocated section.
    fn elf_with_sections() -> Vec<u8> {
        const PH: usize = 52;
        let segments: [(u32, u32, u32, u32, u32); 3] = [
            // (offset, vaddr, paddr, filesz, memsz)
            (0, 0x20000, 0x20000, 0x90, 0x90),
            (0x100, 0x27000, 0x27000, 8, 8),
            (0x108, 0x2000_0100, 0x27008, 4, 0x104),
        ];
        let sh_at = 0x200;
        let mut elf = vec![0u8; sh_at];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 1; // 32-bit
        elf[5] = 1; // little-endian
        elf[28..32].copy_from_slice(&(PH as u32).to_le_bytes()); // e_phoff
        elf[32..36].copy_from_slice(&(sh_at as u32).to_le_bytes()); // e_shoff
        elf[42..44].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
        elf[44..46].copy_from_slice(&3u16.to_le_bytes()); // e_phnum
        elf[46..48].copy_from_slice(&40u16.to_le_bytes()); // e_shentsize
        elf[48..50].copy_from_slice(&5u16.to_le_bytes()); // e_shnum
        for (k, (offset, vaddr, paddr, filesz, memsz)) in segments.into_iter().enumerate() {
            let h = PH + 32 * k;
            for (w, v) in [1, offset, vaddr, paddr, filesz, memsz]
                .into_iter()
                .enumerate()
            {
                elf[h + 4 * w..h + 4 * w + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        // (type, flags, addr, offset, size): null, .text, .data, .bss, .comment
        let sections: [(u32, u32, u32, u32, u32); 5] = [
            (0, 0, 0, 0, 0),
            (1, 6, 0x27000, 0x100, 8),
            (1, 3, 0x2000_0100, 0x108, 4),
            (8, 3, 0x2000_0104, 0x10c, 0x100),
            (1, 0, 0, 0x10c, 4),
        ];
        let mut headers = Vec::new();
        for (kind, flags, addr, offset, size) in sections {
            let mut h = [0u8; 40];
            for (w, v) in [0, kind, flags, addr, offset, size].into_iter().enumerate() {
                h[4 * w..4 * w + 4].copy_from_slice(&v.to_le_bytes());
            }
            headers.extend_from_slice(&h);
        }
        elf[0x100..0x10c].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        elf.extend_from_slice(&headers);
        elf
    }

    #[test]
    fn load_sections_take_load_addresses_and_skip_headers_bss_and_debug() {
        let chunks = load_sections(&elf_with_sections()).unwrap();
        assert_eq!(
            chunks,
            [
                Chunk {
                    address: 0x27000,
                    bytes: vec![1, 2, 3, 4, 5, 6, 7, 8]
                },
                Chunk {
                    address: 0x27008,
                    bytes: vec![9, 10, 11, 12]
                }
            ]
        );
        // Section headers cut off; .text larger than its segment.
        let mut cut = elf_with_sections();
        cut.truncate(0x210);
        assert!(load_sections(&cut).is_err());
        let mut oversized = elf_with_sections();
        let size_field = 0x200 + 40 + 20;
        oversized[size_field..size_field + 4].copy_from_slice(&0x1000u32.to_le_bytes());
        let err = load_sections(&oversized).unwrap_err().to_string();
        assert!(err.contains("no loadable segment"), "{err}");
        assert!(
            load_sections(b"not an elf at all, not even close to one...................").is_err()
        );
    }

    #[test]
    fn chunks_outside_the_allowed_regions_are_refused() {
        let app = Region {
            origin: 0x27000,
            length: 0x1000,
        };
        let inside = Chunk {
            address: 0x27800,
            bytes: vec![0; 0x800],
        };
        assert!(check_within(std::slice::from_ref(&inside), &[("app", app)]).is_ok());
        let softdevice = Chunk {
            address: 0x26F00,
            bytes: vec![0; 0x200],
        };
        let err = check_within(&[inside, softdevice], &[("app", app)]).unwrap_err();
        assert!(err.to_string().contains("0x26f00"), "{err}");
    }
}
