//! Booting the guest kernel through its PVH entry: the uncompressed `vmlinux` inside a bzImage.
//!
//! QEMU loads an ELF kernel that carries a PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`, Linux's
//! `CONFIG_PVH`) straight into guest memory and starts it in 32-bit protected mode: no
//! real-mode setup code and, above all, no decompression, which under TCG is a good part of a
//! boot (docs/performance.md). [`extract`] takes the compressed payload out of a bzImage (its
//! header says where), decompresses it with the system's tool for its format (`unlz4`, `xz`,
//! `zstd`, `gzip`), checks that the result is an ELF with the PVH note, and keeps it in a cache
//! directory, named after the bzImage's name, size and modification time, so that it is done
//! once per kernel (about 50 MB for Debian's cloud kernel).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a kernel cannot be booted through PVH (the caller boots the bzImage instead).
#[derive(Debug, thiserror::Error)]
pub enum PvhError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not a bzImage")]
    NotBzImage(PathBuf),
    #[error("{path}: unknown compression of the kernel payload (magic {magic})")]
    UnknownCompression { path: PathBuf, magic: String },
    #[error("{tool} failed on {path}: {why} (install it, e.g. apt-get install {package})")]
    Tool {
        tool: &'static str,
        package: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("{0}: the uncompressed kernel has no PVH entry note (a kernel without CONFIG_PVH)")]
    NoPvhNote(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The decompressors by payload magic: (magic, tool, arguments, Debian package).
const FORMATS: &[(&[u8], &str, &[&str], &str)] = &[
    (&[0x02, 0x21, 0x4c, 0x18], "unlz4", &["-c"], "lz4"),
    (
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
        "xz",
        &["-dc"],
        "xz-utils",
    ),
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd", &["-dcq"], "zstd"),
    (&[0x1f, 0x8b], "gzip", &["-dc"], "gzip"),
];

/// The PVH kernel for `bzimage`, extracted into `cache_dir` unless it is there already.
pub fn extract(bzimage: &Path, cache_dir: &Path) -> Result<PathBuf, PvhError> {
    let read_err = |source| PvhError::Read {
        path: bzimage.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(bzimage).map_err(read_err)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let name = bzimage
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kernel".into());
    let target = cache_dir.join(format!("pvh-{name}-{}-{mtime}", meta.len()));
    if target.is_file() {
        return Ok(target);
    }
    let image = std::fs::read(bzimage).map_err(read_err)?;
    let payload = payload(&image).ok_or_else(|| PvhError::NotBzImage(bzimage.to_path_buf()))?;
    let (_, tool, args, package) = FORMATS
        .iter()
        .find(|(magic, ..)| payload.starts_with(magic))
        .ok_or_else(|| PvhError::UnknownCompression {
            path: bzimage.to_path_buf(),
            magic: payload.iter().take(6).map(|b| format!("{b:02x}")).collect(),
        })?;
    let tool_err = |why: String| PvhError::Tool {
        tool,
        package,
        path: bzimage.to_path_buf(),
        why,
    };
    let mut child = Command::new(tool)
        .args(*args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| tool_err(e.to_string()))?;
    // Feed stdin from a thread while stdout is read here (either pipe could fill).
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = payload.to_vec();
    let feeder = std::thread::spawn(move || {
        // The payload ends with the kernel's size word, which some tools call trailing garbage.
        let _ = stdin.write_all(&input);
    });
    let mut vmlinux = Vec::new();
    let read = child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_end(&mut vmlinux);
    let _ = feeder.join();
    let _ = child.wait();
    read.map_err(|e| tool_err(e.to_string()))?;
    if !has_pvh_note(&vmlinux) {
        return Err(if vmlinux.starts_with(b"\x7fELF") {
            PvhError::NoPvhNote(bzimage.to_path_buf())
        } else {
            tool_err("its output is not an ELF kernel".into())
        });
    }
    let write_err = |source| PvhError::Write {
        path: target.clone(),
        source,
    };
    std::fs::create_dir_all(cache_dir).map_err(write_err)?;
    // Written aside and renamed: a concurrent run sees the whole file or none.
    let tmp = cache_dir.join(format!(".{}.{}", name, std::process::id()));
    std::fs::write(&tmp, &vmlinux).map_err(write_err)?;
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e)
    })?;
    Ok(target)
}

/// The compressed payload of a bzImage (boot protocol 2.08+: `payload_offset` and
/// `payload_length` in the setup header, counted from the protected-mode code).
pub fn payload(image: &[u8]) -> Option<&[u8]> {
    if image.len() < 0x250 || &image[0x202..0x206] != b"HdrS" {
        return None;
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let u32_at = |o: usize| u32::from_le_bytes(image[o..o + 4].try_into().unwrap()) as usize;
    let start = (setup_sects + 1) * 512 + u32_at(0x248);
    let end = start.checked_add(u32_at(0x24c))?;
    image.get(start..end)
}

/// Whether an ELF64 image has a `Xen` note of type 18 (`XEN_ELFNOTE_PHYS32_ENTRY`).
pub fn has_pvh_note(elf: &[u8]) -> bool {
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph) != Some(4) {
            continue; // not PT_NOTE
        }
        let (Some(off), Some(size)) = (u64_at(ph + 0x08), u64_at(ph + 0x20)) else {
            continue;
        };
        let mut p = off;
        let end = off.saturating_add(size).min(elf.len());
        while p + 12 <= end {
            let (Some(namesz), Some(descsz), Some(kind)) =
                (u32_at(p), u32_at(p + 4), u32_at(p + 8))
            else {
                break;
            };
            let name = elf.get(p + 12..p + 12 + namesz).unwrap_or(&[]);
            if name == b"Xen\0" && kind == 18 {
                return true;
            }
            p += 12 + namesz.div_ceil(4) * 4 + descsz.div_ceil(4) * 4;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with one PT_NOTE segment holding one note.
    fn elf_with_note(name: &[u8], kind: u32) -> Vec<u8> {
        let mut e = vec![0u8; 0x40 + 0x38];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let note_off = e.len();
        let mut note = Vec::new();
        note.extend((name.len() as u32).to_le_bytes());
        note.extend(8u32.to_le_bytes());
        note.extend(kind.to_le_bytes());
        note.extend(name);
        while note.len() % 4 != 0 {
            note.push(0);
        }
        note.extend([0u8; 8]);
        e[0x40..0x44].copy_from_slice(&4u32.to_le_bytes());
        e[0x48..0x50].copy_from_slice(&(note_off as u64).to_le_bytes());
        e[0x60..0x68].copy_from_slice(&(note.len() as u64).to_le_bytes());
        e.extend(note);
        e
    }

    #[test]
    fn pvh_note() {
        assert!(has_pvh_note(&elf_with_note(b"Xen\0", 18)));
        assert!(!has_pvh_note(&elf_with_note(b"Xen\0", 17)));
        assert!(!has_pvh_note(&elf_with_note(b"GNU\0", 18)));
        assert!(!has_pvh_note(b"\x7fELF\x02\x01"));
        assert!(!has_pvh_note(b"not an elf"));
    }

    #[test]
    fn bzimage_payload() {
        let mut img = vec![0u8; 5 * 512 + 100];
        img[0x1f1] = 4;
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x248..0x24c].copy_from_slice(&10u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&20u32.to_le_bytes());
        img[5 * 512 + 10] = 0xfd;
        let p = payload(&img).unwrap();
        assert_eq!((p.len(), p[0]), (20, 0xfd));
        img[0x24c..0x250].copy_from_slice(&2000u32.to_le_bytes());
        assert!(payload(&img).is_none(), "a payload past the end");
        assert!(payload(b"short").is_none());
    }

    /// The installed guest kernel (scripts/setup-host.sh) has a PVH entry once extracted.
    #[test]
    fn the_installed_kernel_extracts() {
        let Ok(kernel) = crate::kernel::find_kernel(None) else {
            eprintln!("no guest kernel installed: skipped");
            return;
        };
        let dir = std::env::temp_dir().join(format!("gp-pvh-test-{}", std::process::id()));
        let vmlinux = extract(&kernel, &dir).unwrap();
        assert!(has_pvh_note(&std::fs::read(&vmlinux).unwrap()));
        // Cached: the second call does not extract again.
        let t = std::fs::metadata(&vmlinux).unwrap().modified().unwrap();
        assert_eq!(extract(&kernel, &dir).unwrap(), vmlinux);
        assert_eq!(std::fs::metadata(&vmlinux).unwrap().modified().unwrap(), t);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
