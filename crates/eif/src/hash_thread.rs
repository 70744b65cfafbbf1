//! Hashing on a helper thread. A build hashes the same bytes several times (layer SHA-256s,
//! PCR0, PCR1/PCR2); each hash gets its own thread so they run beside the thread that reads,
//! flattens and writes, instead of after it.

use std::io::{self, Write};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use crate::worker::Worker;

/// Chunk size of [`ChunkedHash`].
const CHUNK: usize = 1 << 20;
/// Chunks in flight to a [`ChunkedHash`] thread: its producer has no other consumer to keep
/// pace with, so a short queue suffices.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Recycles chunk buffers. A fresh buffer costs a page fault per 4 KiB on first touch (much
/// more than hashing it, on VMs that hand memory back to the host), so chunks go back to the
/// pool once every thread is done with them. Holds at most the chunks that were in flight.
#[derive(Clone)]
pub(crate) struct ChunkPool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    chunk: usize,
}

impl ChunkPool {
    /// A pool of `chunk`-byte buffers.
    pub fn new(chunk: usize) -> Self {
        ChunkPool {
            free: Arc::default(),
            chunk,
        }
    }

    /// An empty buffer with room for a chunk.
    pub fn take(&self) -> Vec<u8> {
        let recycled = self.free.lock().ok().and_then(|mut free| free.pop());
        let mut buf = recycled.unwrap_or_else(|| Vec::with_capacity(self.chunk));
        buf.clear();
        buf
    }

    /// Returns a chunk's buffer if this was its last user.
    fn give_back(&self, chunk: Arc<Vec<u8>>) {
        if let (Some(buf), Ok(mut free)) = (Arc::into_inner(chunk), self.free.lock()) {
            free.push(buf);
        }
    }
}

/// A hasher (anything that absorbs bytes through `Write`: `Sha256`, `PcrHasher`) continued on
/// its own thread. Chunks are shared (`Arc`), so one chunk can feed several threads uncopied.
pub(crate) struct HashThread<H>(Worker<Arc<Vec<u8>>, H>);

impl<H: Write + Send + 'static> HashThread<H> {
    /// Hashes chunks on a new thread, returning each to `pool` when no one else holds it;
    /// [`send`](Self::send) blocks while `in_flight` chunks wait.
    pub fn spawn(mut hasher: H, pool: &ChunkPool, in_flight: usize) -> Self {
        let pool = pool.clone();
        HashThread(Worker::spawn(
            in_flight,
            move |chunks: Receiver<Arc<Vec<u8>>>| {
                for chunk in chunks {
                    // Hashers never fail to absorb bytes.
                    let _ = hasher.write_all(&chunk);
                    pool.give_back(chunk);
                }
                hasher
            },
        ))
    }

    /// Queues a chunk; blocks while the thread is `in_flight` chunks behind.
    pub fn send(&self, chunk: Arc<Vec<u8>>) -> io::Result<()> {
        self.0.send(chunk)
    }

    /// Waits for every queued chunk to be hashed and returns the hasher.
    pub fn join(self) -> io::Result<H> {
        self.0.join()
    }
}

/// A [`HashThread`] fed by many small writes: buffers them into whole chunks.
pub(crate) struct ChunkedHash<H> {
    thread: HashThread<H>,
    pool: ChunkPool,
    buf: Vec<u8>,
}

impl<H: Write + Send + 'static> ChunkedHash<H> {
    pub fn spawn(hasher: H) -> Self {
        let pool = ChunkPool::new(CHUNK);
        ChunkedHash {
            thread: HashThread::spawn(hasher, &pool, CHUNKS_IN_FLIGHT),
            buf: pool.take(),
            pool,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(CHUNK - self.buf.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == CHUNK {
                let full = std::mem::replace(&mut self.buf, self.pool.take());
                self.thread.send(Arc::new(full))?;
            }
        }
        Ok(())
    }

    /// Hashes what is buffered and returns the hasher.
    pub fn finish(self) -> io::Result<H> {
        if !self.buf.is_empty() {
            self.thread.send(Arc::new(self.buf))?;
        }
        self.thread.join()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn chunked_hash_equals_direct_hash_across_chunk_boundaries() {
        let data: Vec<u8> = (0..(2 * CHUNK + 12_345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let mut threaded = ChunkedHash::spawn(Sha256::new());
        // Uneven pieces: empty, small, larger than a chunk, ending mid-chunk.
        let mut rest = &data[..];
        for n in [0, 5, CHUNK + 1, CHUNK / 2, 3] {
            threaded.update(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        threaded.update(rest).unwrap();
        assert_eq!(threaded.finish().unwrap().finalize(), Sha256::digest(&data));
    }
}
