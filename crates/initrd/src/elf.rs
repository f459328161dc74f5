//! Is a binary fit to be `/init` of an initrd with no loader and no libc? Reads just enough of
//! the ELF program headers to tell: x86-64, executable, no program interpreter (`PT_INTERP`) and
//! no shared-library dependencies (`DT_NEEDED`). A static-PIE binary (what
//! `-C target-feature=+crt-static` gives on the gnu target) has a dynamic section for its own
//! relocations but neither of those, and is fine.

use std::fmt;

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const EM_X86_64: u16 = 62;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

/// Why a binary cannot be `/init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// Not a 64-bit little-endian x86-64 ELF executable.
    NotElf(String),
    /// Needs the dynamic loader or shared libraries.
    Dynamic(String),
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::NotElf(why) | Unfit::Dynamic(why) => f.write_str(why),
        }
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn not_elf(why: &str) -> Unfit {
    Unfit::NotElf(why.to_string())
}

/// Checks that `bytes` is a statically linked x86-64 ELF executable.
pub fn check_static(bytes: &[u8]) -> Result<(), Unfit> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(not_elf("not an ELF file"));
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(not_elf("not a 64-bit little-endian ELF file"));
    }
    let truncated = || not_elf("truncated ELF header");
    let e_type = u16_at(bytes, 16).ok_or_else(truncated)?;
    let machine = u16_at(bytes, 18).ok_or_else(truncated)?;
    if machine != EM_X86_64 {
        return Err(Unfit::NotElf(format!(
            "built for ELF machine {machine}, not x86-64"
        )));
    }
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(Unfit::NotElf(format!(
            "ELF type {e_type} is not an executable"
        )));
    }
    let phoff = u64_at(bytes, 32).ok_or_else(truncated)? as usize;
    let phentsize = u16_at(bytes, 54).ok_or_else(truncated)? as usize;
    let phnum = u16_at(bytes, 56).ok_or_else(truncated)? as usize;
    if phnum == 0 || phentsize < 56 {
        return Err(not_elf("no program headers"));
    }
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let bad_ph = || not_elf("truncated program header");
        let p_type = u32_at(bytes, ph).ok_or_else(bad_ph)?;
        let offset = u64_at(bytes, ph + 8).ok_or_else(bad_ph)? as usize;
        let filesz = u64_at(bytes, ph + 32).ok_or_else(bad_ph)? as usize;
        let seg = offset
            .checked_add(filesz)
            .and_then(|end| bytes.get(offset..end))
            .ok_or_else(|| not_elf("program header points past the end of the file"))?;
        match p_type {
            PT_INTERP => {
                let interp = String::from_utf8_lossy(seg);
                return Err(Unfit::Dynamic(format!(
                    "dynamically linked (needs the loader {})",
                    interp.trim_end_matches('\0')
                )));
            }
            PT_DYNAMIC => {
                let needed = seg
                    .chunks_exact(16)
                    .map(|d| u64::from_le_bytes(d[..8].try_into().expect("8 bytes")))
                    .take_while(|&tag| tag != DT_NULL)
                    .filter(|&tag| tag == DT_NEEDED)
                    .count();
                if needed > 0 {
                    return Err(Unfit::Dynamic(format!(
                        "dynamically linked (needs {needed} shared libraries)"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF64 x86-64 file with the given program headers, each `(type, contents)`.
    pub(crate) fn fake_elf(segments: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let phoff = 64usize;
        let data_start = phoff + 56 * segments.len();
        let mut out = vec![0u8; data_start];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&ET_DYN.to_le_bytes());
        out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        out[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        for (i, (p_type, contents)) in segments.iter().enumerate() {
            let ph = phoff + 56 * i;
            let offset = out.len() as u64;
            out[ph..ph + 4].copy_from_slice(&p_type.to_le_bytes());
            out[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
            out[ph + 32..ph + 40].copy_from_slice(&(contents.len() as u64).to_le_bytes());
            out.extend_from_slice(contents);
        }
        out
    }

    fn dyn_entries(tags: &[u64]) -> Vec<u8> {
        tags.iter()
            .flat_map(|&t| t.to_le_bytes().into_iter().chain(0u64.to_le_bytes()))
            .collect()
    }

    #[test]
    fn static_and_static_pie_pass() {
        assert_eq!(check_static(&fake_elf(&[(1, vec![0; 8])])), Ok(()));
        // static-pie: a dynamic section without DT_NEEDED (here: DT_RELA=7, then DT_NULL).
        let pie = fake_elf(&[(1, vec![0; 8]), (PT_DYNAMIC, dyn_entries(&[7, 0, 1]))]);
        assert_eq!(check_static(&pie), Ok(()));
    }

    #[test]
    fn interpreter_or_needed_libraries_are_dynamic() {
        let interp = fake_elf(&[(PT_INTERP, b"/lib64/ld-linux-x86-64.so.2\0".to_vec())]);
        let e = check_static(&interp).unwrap_err();
        assert!(matches!(e, Unfit::Dynamic(_)));
        assert!(e.to_string().contains("/lib64/ld-linux-x86-64.so.2"), "{e}");

        let needed = fake_elf(&[(PT_DYNAMIC, dyn_entries(&[DT_NEEDED, DT_NEEDED, 7, 0]))]);
        assert_eq!(
            check_static(&needed),
            Err(Unfit::Dynamic(
                "dynamically linked (needs 2 shared libraries)".into()
            ))
        );
    }

    #[test]
    fn this_test_binary_is_dynamic() {
        // cargo builds test binaries against the system libc, dynamically.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(matches!(check_static(&me), Err(Unfit::Dynamic(_))));
    }

    #[test]
    fn garbage_is_not_elf() {
        for bytes in [&b""[..], b"#!/bin/sh\necho hi\n", b"\x7fELF\x01\x01"] {
            assert!(
                matches!(check_static(bytes), Err(Unfit::NotElf(_))),
                "{bytes:?}"
            );
        }
        let mut wrong_machine = fake_elf(&[(1, vec![])]);
        wrong_machine[18] = 183; // aarch64
        assert!(check_static(&wrong_machine)
            .unwrap_err()
            .to_string()
            .contains("not x86-64"));
        let mut truncated = fake_elf(&[(PT_INTERP, b"/lib/ld.so\0".to_vec())]);
        truncated.truncate(100);
        assert!(matches!(check_static(&truncated), Err(Unfit::NotElf(_))));
    }
}
