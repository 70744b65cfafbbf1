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
use std::sync::mpsc::{channel, Receiver};

use crate::worker::Worker;

/// Alignment of direct writes: covers every logical block size up to 4 KiB.
const ALIGN: usize = 4096;
/// Size of each direct write.
const STAGE: usize = 1 << 20;
/// Full stages queued for the writing thread: the build goes on while the disk writes, so a
/// slow disk costs its write time only beyond the build's own.
const STAGES_QUEUED: usize = 4;

/// A `STAGE`-byte window of an aligned allocation.
struct Stage {
    buf: Vec<u8>,
    offset: usize,
}

impl Stage {
    fn new() -> Self {
        let buf = vec![0u8; STAGE + ALIGN];
        let offset = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        Stage { buf, offset }
    }

    fn bytes(&self, len: usize) -> &[u8] {
        &self.buf[self.offset..self.offset + len]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.offset..self.offset + STAGE]
    }
}

/// The thread that writes full stages, directly while the filesystem allows it.
struct StageWriter {
    worker: Worker<(Stage, u64), io::Result<()>>,
    /// Written stages, for reuse.
    done: Receiver<Stage>,
}

impl StageWriter {
    fn spawn(file: File, mut direct: Option<File>) -> Self {
        let (done_tx, done) = channel();
        let worker = Worker::spawn(STAGES_QUEUED, move |stages: Receiver<(Stage, u64)>| {
            for (stage, at) in stages {
                let data = stage.bytes(STAGE);
                match direct.as_ref().map(|d| d.write_all_at(data, at)) {
                    None => file.write_all_at(data, at)?,
                    Some(Ok(())) => {}
                    // Opened, but direct writes refused: the page cache it is.
                    Some(Err(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
                        direct = None;
                        file.write_all_at(data, at)?;
                    }
                    Some(Err(e)) => return Err(e),
                }
                let _ = done_tx.send(stage);
            }
            Ok(())
        });
        StageWriter { worker, done }
    }

    /// Waits for every queued stage to be written.
    fn join(self) -> io::Result<()> {
        self.worker.join()?
    }
}

/// A `Write + Seek` over a new, empty file. Seeks may go anywhere up to the current end; writes
/// there overwrite, writes at the end append. [`finish`](Self::finish) must be called.
pub struct OutputFile {
    /// Normal handle: patches and the tail.
    file: File,
    writer: Option<StageWriter>,
    /// Bytes `flushed..len` of the output.
    stage: Stage,
    /// Bytes handed to the writer; a multiple of `STAGE`.
    flushed: u64,
    pos: u64,
    len: u64,
    /// Overwrites of bytes below `flushed`, applied by `finish`.
    patches: Vec<(u64, Vec<u8>)>,
}

impl OutputFile {
    /// Writes into `file`, an empty file at `path` (opened again with `O_DIRECT` if possible).
    pub fn new(path: &Path, file: File) -> io::Result<Self> {
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok();
        Self::with(file, direct)
    }

    /// Writes through the page cache only.
    #[cfg(test)]
    pub fn buffered(file: File) -> io::Result<Self> {
        Self::with(file, None)
    }

    fn with(file: File, direct: Option<File>) -> io::Result<Self> {
        Ok(OutputFile {
            writer: Some(StageWriter::spawn(file.try_clone()?, direct)),
            file,
            stage: Stage::new(),
            flushed: 0,
            pos: 0,
            len: 0,
            patches: Vec::new(),
        })
    }

    /// Writes what is staged, the tail and the patches; returns the file.
    pub fn finish(mut self) -> io::Result<File> {
        if let Some(w) = self.writer.take() {
            w.join()?;
        }
        let tail = self.stage.bytes((self.len - self.flushed) as usize);
        self.file.write_all_at(tail, self.flushed)?;
        for (at, bytes) in &self.patches {
            self.file.write_all_at(bytes, *at)?;
        }
        Ok(self.file)
    }

    /// Hands the full stage to the writing thread.
    fn flush_stage(&mut self) -> io::Result<()> {
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| io::Error::other("the output is finished"))?;
        let next = writer.done.try_recv().unwrap_or_else(|_| Stage::new());
        let full = std::mem::replace(&mut self.stage, next);
        if writer.worker.send((full, self.flushed)).is_err() {
            // The thread stopped on an error: report it.
            let failed = self.writer.take().map(StageWriter::join);
            return Err(match failed {
                Some(Err(e)) => e,
                _ => io::Error::other("the output writing thread stopped"),
            });
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
        self.stage.bytes_mut()[at..at + n].copy_from_slice(&data[..n]);
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
            }
            .unwrap();
            exercise(&mut out);
            let end = out.stream_position().unwrap();
            assert!(out.seek(SeekFrom::Start(end + 1)).is_err());
            out.finish().unwrap();
            assert_eq!(
                std::fs::read(&path).unwrap(),
                *expected.get_ref(),
                "{direct}"
            );
        }
    }

    #[test]
    fn a_failing_disk_is_reported() {
        let full = File::options().write(true).open("/dev/full").unwrap();
        let mut out = OutputFile::buffered(full).unwrap();
        let chunk = vec![1u8; STAGE];
        // The writing thread fails on the first stage; a later write or finish reports it.
        let written = (0..2 * STAGES_QUEUED + 2).try_for_each(|_| out.write_all(&chunk));
        let error = match written {
            Err(e) => e,
            Ok(()) => out.finish().unwrap_err(),
        };
        assert_eq!(error.raw_os_error(), Some(libc::ENOSPC), "{error}");
    }
}
