//! What xtask reads from the firmware's ELF files (32-bit, little-endian): section and
//! program headers, sizes in the sense of `arm-none-eabi-size`, and symbols — for the
//! size budgets, the MCU benchmark's markers and profile, and the UF2 image.

use anyhow::{Context, Result, ensure};

/// Sizes in the sense of `arm-none-eabi-size` (Berkeley format).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElfSizes {
    /// Allocated, read-only (code, vector table, constants): lives in flash.
    pub text: u64,
    /// Allocated, writable, with contents: flash (initial values) and RAM.
    pub data: u64,
    /// Allocated, writable, no contents: RAM only.
    pub bss: u64,
}

/// A section header.
pub struct Section {
    pub name: String,
    pub kind: u32,
    pub flags: u32,
    /// Virtual address.
    pub addr: u32,
    pub offset: u32,
    pub size: u32,
    pub link: u32,
}

pub const SHT_SYMTAB: u32 = 2;
pub const SHT_NOBITS: u32 = 8;
pub const SHF_WRITE: u32 = 1;
pub const SHF_ALLOC: u32 = 2;
pub const PT_LOAD: u32 = 1;

/// Fails unless `elf` starts like a 32-bit little-endian ELF.
fn check_header(elf: &[u8]) -> Result<()> {
    ensure!(
        elf.len() >= 52 && elf[..4] == *b"\x7fELF" && elf[4] == 1 && elf[5] == 1,
        "not a 32-bit little-endian ELF"
    );
    Ok(())
}

pub fn u16_at(elf: &[u8], o: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(
        elf.get(o..o + 2).context("ELF truncated")?.try_into()?,
    ))
}

pub fn u32_at(elf: &[u8], o: usize) -> Result<u32> {
    Ok(u32::from_le_bytes(
        elf.get(o..o + 4).context("ELF truncated")?.try_into()?,
    ))
}

/// `PT_LOAD` program headers: `(vaddr, paddr, memsz)`.
pub fn load_segments(elf: &[u8]) -> Result<Vec<(u32, u32, u32)>> {
    check_header(elf)?;
    let u16_at = |o| u16_at(elf, o);
    let u32_at = |o| u32_at(elf, o);
    let (phoff, phentsize, phnum) = (u32_at(28)? as usize, u16_at(42)? as usize, u16_at(44)?);
    let mut segments = Vec::new();
    for i in 0..usize::from(phnum) {
        let h = phoff + i * phentsize;
        if u32_at(h)? == PT_LOAD {
            segments.push((u32_at(h + 8)?, u32_at(h + 12)?, u32_at(h + 20)?));
        }
    }
    Ok(segments)
}

/// Every section header, names resolved.
pub fn sections(elf: &[u8]) -> Result<Vec<Section>> {
    check_header(elf)?;
    let u16_at = |o| u16_at(elf, o);
    let u32_at = |o| u32_at(elf, o);
    let shoff = u32_at(32)? as usize;
    let shentsize = u16_at(46)? as usize;
    let shnum = u16_at(48)? as usize;
    let shstrndx = u16_at(50)? as usize;
    let mut sections = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        sections.push(Section {
            name: u32_at(h)?.to_string(),
            kind: u32_at(h + 4)?,
            flags: u32_at(h + 8)?,
            addr: u32_at(h + 12)?,
            offset: u32_at(h + 16)?,
            size: u32_at(h + 20)?,
            link: u32_at(h + 24)?,
        });
    }
    let names_at = sections
        .get(shstrndx)
        .context("ELF: no section-name table")?
        .offset as usize;
    for s in &mut sections {
        let start = names_at + s.name.parse::<usize>()?;
        let end = elf[start..]
            .iter()
            .position(|&b| b == 0)
            .context("ELF name")?
            + start;
        s.name = String::from_utf8_lossy(&elf[start..end]).into_owned();
    }
    Ok(sections)
}

pub fn sizes(elf: &[u8]) -> Result<ElfSizes> {
    let mut sizes = ElfSizes::default();
    for s in sections(elf)? {
        if s.flags & SHF_ALLOC == 0 {
            continue;
        }
        let size = u64::from(s.size);
        if s.kind == SHT_NOBITS {
            sizes.bss += size;
        } else if s.flags & SHF_WRITE != 0 {
            sizes.data += size;
        } else {
            sizes.text += size;
        }
    }
    Ok(sizes)
}

/// A symbol of the ELF's symbol table.
struct ElfSymbol<'e> {
    name: &'e [u8],
    /// Address, Thumb bit cleared for functions.
    value: u32,
    size: u32,
    is_function: bool,
}

/// Every symbol of the ELF's symbol table.
fn symbols(elf: &[u8]) -> Result<Vec<ElfSymbol<'_>>> {
    const STT_FUNC: u8 = 2;
    let sections = sections(elf)?;
    let symtab = sections
        .iter()
        .find(|s| s.kind == SHT_SYMTAB)
        .context("ELF has no symbol table")?;
    let strtab = sections
        .get(symtab.link as usize)
        .context("ELF symtab link")?;
    let entries = elf
        .get(symtab.offset as usize..(symtab.offset + symtab.size) as usize)
        .context("ELF symtab truncated")?;
    let mut symbols = Vec::new();
    for sym in entries.chunks_exact(16) {
        let name_off = u32::from_le_bytes(sym[0..4].try_into()?) as usize;
        let Some(rest) = elf.get(strtab.offset as usize + name_off..) else {
            continue;
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(0);
        let is_function = sym[12] & 0xF == STT_FUNC;
        let value = u32::from_le_bytes(sym[4..8].try_into()?);
        symbols.push(ElfSymbol {
            name: &rest[..end],
            value: if is_function { value & !1 } else { value },
            size: u32::from_le_bytes(sym[8..12].try_into()?),
            is_function,
        });
    }
    Ok(symbols)
}

/// Address of a function symbol (Thumb bit cleared).
pub fn symbol(elf: &[u8], name: &str) -> Result<u32> {
    symbols(elf)?
        .into_iter()
        .find(|s| s.name == name.as_bytes())
        .map(|s| s.value & !1)
        .with_context(|| format!("symbol {name} not found in the firmware ELF"))
}

/// Function symbols with a size, sorted by address: `(start, end, demangled name)`.
pub fn functions(elf: &[u8]) -> Result<Vec<(u32, u32, String)>> {
    let mut functions: Vec<(u32, u32, String)> = symbols(elf)?
        .into_iter()
        .filter(|s| s.is_function && s.size > 0)
        .map(|s| {
            let name = String::from_utf8_lossy(s.name);
            // `{:#}`: without the hash suffix.
            let name = format!("{:#}", rustc_demangle::demangle(&name));
            (s.value, s.value + s.size, name)
        })
        .collect();
    functions.sort();
    functions.dedup_by_key(|f| f.0);
    Ok(functions)
}
