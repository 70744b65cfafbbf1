//! The EIF output file, written with `O_DIRECT` where the filesystem allows it.
//!
//! An EIF is written once and read back rarely (upload, `describe`), so routing hundreds of MiB
//! through the page cache only evicts other data. On VMs that return freed memory to the host,
//! each fresh page-cache page also costs a host fault: measured here, buffered writes of a
//! 331 MiB EIF took 0.1–1.0 s of system time from run to run, direct writes 0.06 s. Direct I/O
//! needs block-aligned buffers, offsets and lengths, so appends are staged in an aligned buffer;
//! the few small overwrites the EIF writer makes (the file header and section headers, patched
//! once their sizes are known) are kept and applied through the page cache at the end, as is
//! the unaligned tail. Where `O_DIRECT` is refused (tmpfs, some network filesystems) every write
//! goes through the page cache instead; the bytes are the same either way.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of direct writes: covers every logical block size up to 4 KiB.
const ALIGN: usize = 4096;
/// Size of each direct write.
const STAGE: usize = 1 << 20;

/// A `Write + Seek` over a new, empty file. Seeks may go anywhere up to the current end; writes
/// there overwrite, writes at the end append. [`finish`](Self::finish) must be called.
pub struct OutputFile {
    /// Normal handle: patches, the tail, and everything when `direct` is `None`.
    file: File,
    direct: Option<File>,
    /// Holds `STAGE + ALIGN` bytes; bytes `flushed..len` of the output are staged from
    /// `offset`, which is aligned.
    stage: Vec<u8>,
    offset: usize,
    /// Bytes already written to the file; a multiple of `STAGE`.
    flushed: u64,
    pos: u64,
    len: u64,
    /// Overwrites of bytes below `flushed`, applied by `finish`.
    patches: Vec<(u64, Vec<u8>)>,
}

impl OutputFile {
    /// Writes into `file`, an empty file at `path` (opened again with `O_DIRECT` if possible).
    pub fn new(path: &Path, file: File) -> Self {
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok();
        Self::with(file, direct)
    }

    /// Writes through the page cache only.
    #[cfg(test)]
    pub fn buffered(file: File) -> Self {
        Self::with(file, None)
    }

    fn with(file: File, direct: Option<File>) -> Self {
        let stage = vec![0u8; STAGE + ALIGN];
        let offset = stage.as_ptr().align_offset(ALIGN).min(ALIGN);
        OutputFile {
            file,
            direct,
            stage,
            offset,
            flushed: 0,
            pos: 0,
            len: 0,
            patches: Vec::new(),
        }
    }

    /// Whether writes still bypass the page cache (false after a fallback).
    #[cfg(test)]
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Writes what is staged, the tail and the patches; returns the file.
    pub fn finish(mut self) -> io::Result<File> {
        let staged = (self.len - self.flushed) as usize;
        let staged = &self.stage[self.offset..self.offset + staged];
        self.file.write_all_at(staged, self.flushed)?;
        for (at, bytes) in &self.patches {
            self.file.write_all_at(bytes, *at)?;
        }
        self.file.flush()?;
        Ok(self.file)
    }

    /// Writes the full stage at `flushed`, directly if possible.
    fn flush_stage(&mut self) -> io::Result<()> {
        let data = &self.stage[self.offset..self.offset + STAGE];
        if let Some(direct) = &self.direct {
            match direct.write_all_at(data, self.flushed) {
                Ok(()) => {}
                // Opened, but direct writes refused: the page cache it is.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.direct = None;
                    self.file.write_all_at(data, self.flushed)?;
                }
                Err(e) => return Err(e),
            }
        } else {
            self.file.write_all_at(data, self.flushed)?;
        }
        self.flushed += STAGE as u64;
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.pos == self.flushed + STAGE as u64 {
            // Appending to a full stage (pos ≤ len ≤ flushed + STAGE).
            self.flush_stage()?;
        }
        if self.pos < self.flushed {
            // Below the staged region: keep as a patch (never spanning into the stage).
            let n = data.len().min((self.flushed - self.pos) as usize);
            self.patches.push((self.pos, data[..n].to_vec()));
            self.pos += n as u64;
            return Ok(n);
        }
        let at = (self.pos - self.flushed) as usize;
        let n = data.len().min(STAGE - at);
        let start = self.offset + at;
        self.stage[start..start + n].copy_from_slice(&data[..n]);
        self.pos += n as u64;
        self.len = self.len.max(self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for OutputFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) if p <= self.len => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek beyond the end of the output",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Appends in uneven pieces across stage boundaries, then patches bytes below, inside and
    /// across the staged region, as the EIF writer does with its headers.
    fn exercise(out: &mut (impl Write + Seek)) {
        let data: Vec<u8> = (0..(2 * STAGE + 3 * ALIGN + 17))
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        let mut rest = &data[..];
        for n in [0, 548, 12, STAGE - 1, 3, STAGE + 100] {
            out.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        out.write_all(rest).unwrap();
        let end = out.stream_position().unwrap();
        for (at, len) in [(0, 548), (STAGE as u64 - 6, 12), (end - 20, 20), (5000, 3)] {
            out.seek(SeekFrom::Start(at)).unwrap();
            out.write_all(&vec![0xEE; len]).unwrap();
        }
        out.seek(SeekFrom::Start(end)).unwrap();
        out.write_all(b"tail").unwrap();
    }

    #[test]
    fn direct_and_buffered_outputs_equal_an_in_memory_file() {
        let mut expected = Cursor::new(Vec::new());
        exercise(&mut expected);
        // Beside the sources rather than in TMPDIR, which may be a tmpfs (no O_DIRECT).
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        for direct in [true, false] {
            let path = dir.path().join(format!("out-{direct}"));
            let file = File::create(&path).unwrap();
            let mut out = if direct {
                OutputFile::new(&path, file)
            } else {
                OutputFile::buffered(file)
            };
            exercise(&mut out);
            let end = out.stream_position().unwrap();
            assert!(out.seek(SeekFrom::Start(end + 1)).is_err());
            eprintln!("requested direct: {direct}, used: {}", out.is_direct());
            out.finish().unwrap();
            assert_eq!(
                std::fs::read(&path).unwrap(),
                *expected.get_ref(),
                "{direct}"
            );
        }
    }
}
