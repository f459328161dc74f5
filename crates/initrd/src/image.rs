//! The image: a newc cpio archive holding `/init` and the few directories and device nodes it
//! needs before it has mounted anything. Everything that could vary between builds is fixed
//! (mtime 0, uid/gid 0, inode numbers by position, entries sorted by name), so the same `stress`
//! binary always gives the same bytes.

use std::io::{self, Write};

use cpio::newc;
use cpio::NewcBuilder;

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path without a leading `/`.
    pub name: &'static str,
    /// File type and permission bits, as in `st_mode`.
    pub mode: u32,
    /// Device number of a device node, `(major, minor)`.
    pub rdev: (u32, u32),
    pub nlink: u32,
}

const DIR: u32 = 0o040_000;
const CHAR: u32 = 0o020_000;
const FILE: u32 = 0o100_000;

/// The entries, sorted by name. `dev/console` (char 5:1) lets the kernel open the console as
/// fds 0-2 of `/init` before anything is mounted; `/proc`, `/sys` and `/dev` are mount points.
pub fn entries() -> Vec<Entry> {
    let dir = |name| Entry {
        name,
        mode: DIR | 0o755,
        rdev: (0, 0),
        nlink: 2,
    };
    vec![
        dir("dev"),
        Entry {
            name: "dev/console",
            mode: CHAR | 0o600,
            rdev: (5, 1),
            nlink: 1,
        },
        Entry {
            name: "init",
            mode: FILE | 0o755,
            rdev: (0, 0),
            nlink: 1,
        },
        dir("proc"),
        dir("sys"),
    ]
}

/// Builds the archive with `init` as the contents of `/init`.
pub fn build(init: &[u8]) -> io::Result<Vec<u8>> {
    let init_len = u32::try_from(init.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "/init is 4 GiB or larger"))?;
    let mut out = Vec::with_capacity(init.len() + 1024);
    for (i, e) in entries().into_iter().enumerate() {
        let data: &[u8] = if e.name == "init" { init } else { &[] };
        let builder = NewcBuilder::new(e.name)
            .ino(i as u32 + 1)
            .mode(e.mode)
            .uid(0)
            .gid(0)
            .nlink(e.nlink)
            .mtime(0)
            .rdev_major(e.rdev.0)
            .rdev_minor(e.rdev.1);
        let len = if e.name == "init" { init_len } else { 0 };
        let mut w = builder.write(&mut out, len);
        w.write_all(data)?;
        w.finish()?;
    }
    newc::trailer(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpio::newc::ModeFileType;
    use cpio::NewcReader;
    use std::io::Read;

    fn type_bits(t: ModeFileType) -> u32 {
        u32::from(t)
    }

    fn file_type(mode: u32) -> u32 {
        mode & 0o170_000
    }

    /// Reads an archive back: (name, mode, uid, gid, mtime, ino, rdev, contents) per entry.
    #[allow(clippy::type_complexity)]
    fn read_back(mut img: &[u8]) -> Vec<(String, u32, u32, u32, u32, u32, (u32, u32), Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let mut r = NewcReader::new(img).unwrap();
            let e = r.entry().clone();
            if e.is_trailer() {
                break;
            }
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            out.push((
                e.name().to_string(),
                e.mode(),
                e.uid(),
                e.gid(),
                e.mtime(),
                e.ino(),
                (e.rdev_major(), e.rdev_minor()),
                data,
            ));
            img = r.finish().unwrap();
        }
        out
    }

    #[test]
    fn entries_read_back() {
        let init = b"\x7fELF pretend this is stress".to_vec();
        let img = build(&init).unwrap();
        let got = read_back(&img);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "init", "proc", "sys"]);
        for (i, (name, mode, uid, gid, mtime, ino, rdev, data)) in got.iter().enumerate() {
            assert_eq!((*uid, *gid, *mtime), (0, 0, 0), "{name}");
            assert_eq!(*ino, i as u32 + 1, "{name}");
            match name.as_str() {
                "init" => {
                    assert_eq!(*mode, type_bits(ModeFileType::Regular) | 0o755);
                    assert_eq!(data, &init);
                }
                "dev/console" => {
                    assert_eq!(*mode, type_bits(ModeFileType::Char) | 0o600);
                    assert_eq!(*rdev, (5, 1));
                    assert!(data.is_empty());
                }
                _ => {
                    assert_eq!(
                        file_type(*mode),
                        type_bits(ModeFileType::Directory),
                        "{name}"
                    );
                    assert_eq!(*mode & 0o777, 0o755);
                }
            }
        }
        // newc archives are padded to 4 bytes per header/data.
        assert_eq!(img.len() % 4, 0);
    }

    #[test]
    fn same_input_same_bytes() {
        let a = build(b"one binary").unwrap();
        let b = build(b"one binary").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, build(b"another binary").unwrap());
    }

    #[test]
    fn odd_sizes_are_padded_and_read_back() {
        for len in [0usize, 1, 2, 3, 5, 4093] {
            let init: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let got = read_back(&build(&init).unwrap());
            let back = &got.iter().find(|e| e.0 == "init").unwrap().7;
            assert_eq!(back, &init, "len {len}");
        }
    }
}
