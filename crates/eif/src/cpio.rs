//! Deterministic newc ("070701") cpio writer: every header field comes from the caller, nothing
//! from the host (no device numbers, inode numbers or clocks).

use std::io::{self, Read, Write};

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFIFO: u32 = 0o010000;

/// The kernel skips names longer than `PATH_MAX` (4096, NUL included); we refuse them instead.
pub const MAX_NAME: usize = 4095;

#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("writing the cpio archive: {0}")]
    Io(#[from] io::Error),
    #[error("path is longer than {MAX_NAME} bytes: {0}")]
    NameTooLong(String),
    #[error("{0}: newc cannot hold files of 4 GiB or more")]
    FileTooLarge(String),
    #[error("{name}: the source gave {got} bytes instead of {expected}")]
    ShortData {
        name: String,
        got: u64,
        expected: u64,
    },
}

/// One archive member's header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    pub name: Vec<u8>,
    /// File type and permission bits (`S_IF*` | 0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    /// Data size: file length, symlink target length, 0 otherwise.
    pub size: u64,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// Streams entries out; inode numbers are assigned sequentially from `first_ino`.
pub struct CpioWriter<W: Write> {
    out: W,
    ino: u32,
    dev: (u32, u32),
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    /// `dev` is the constant `(c_devmajor, c_devminor)` written in every header.
    pub fn new(out: W, first_ino: u32, dev: (u32, u32)) -> Self {
        CpioWriter {
            out,
            ino: first_ino,
            dev,
            written: 0,
        }
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, to: u64) -> io::Result<()> {
        const ZEROS: [u8; 512] = [0; 512];
        let n = (to - self.written % to) % to;
        self.put(&ZEROS[..n as usize])
    }

    /// Writes one entry; exactly `h.size` bytes are copied from `data`.
    pub fn entry(&mut self, h: &EntryHeader, data: &mut dyn Read) -> Result<(), CpioError> {
        self.entry_with(h, |w| {
            io::copy(&mut data.take(h.size), w)
                .map(drop)
                .map_err(CpioError::Io)
        })
    }

    /// Writes one entry whose data `produce` pushes into the given writer; it must write
    /// exactly `h.size` bytes.
    pub fn entry_with<E: From<CpioError>>(
        &mut self,
        h: &EntryHeader,
        produce: impl FnOnce(&mut dyn Write) -> Result<(), E>,
    ) -> Result<(), E> {
        let display = || String::from_utf8_lossy(&h.name).into_owned();
        if h.name.len() > MAX_NAME {
            return Err(CpioError::NameTooLong(display()).into());
        }
        let size = u32::try_from(h.size).map_err(|_| CpioError::FileTooLarge(display()))?;
        let fields = [
            self.ino,
            h.mode,
            h.uid,
            h.gid,
            h.nlink,
            h.mtime,
            size,
            self.dev.0,
            self.dev.1,
            h.rdev_major,
            h.rdev_minor,
            h.name.len() as u32 + 1,
            0,
        ];
        let mut header = Vec::with_capacity(110 + h.name.len() + 1);
        header.extend_from_slice(b"070701");
        for f in fields {
            header.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        header.extend_from_slice(&h.name);
        header.push(0);
        self.put(&header).map_err(CpioError::Io)?;
        self.pad(4).map_err(CpioError::Io)?;
        let mut counted = Counted {
            out: &mut self.out,
            n: 0,
        };
        produce(&mut counted)?;
        let got = counted.n;
        self.written += got;
        if got != h.size {
            return Err(CpioError::ShortData {
                name: display(),
                got,
                expected: h.size,
            }
            .into());
        }
        self.pad(4).map_err(CpioError::Io)?;
        self.ino = self.ino.wrapping_add(1);
        Ok(())
    }

    /// Writes the `TRAILER!!!` entry and zero-pads the archive to a multiple of `pad_to`.
    pub fn finish(mut self, pad_to: u64) -> Result<W, CpioError> {
        let trailer = EntryHeader {
            name: b"TRAILER!!!".to_vec(),
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            size: 0,
            rdev_major: 0,
            rdev_minor: 0,
        };
        self.entry(&trailer, &mut io::empty())?;
        self.pad(pad_to.max(1))?;
        Ok(self.out)
    }
}

/// Counts the bytes a producer writes.
struct Counted<'a, W: Write> {
    out: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
