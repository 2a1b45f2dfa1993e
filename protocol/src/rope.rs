//! A write buffer for the message encoder that does not copy large byte fields it already
//! holds elsewhere: a fetch response's record batches (read from the log into their own
//! buffers) become chunks of the output by reference, between chunks of freshly encoded
//! bytes. The connection writes the chunks with one vectored write, so a fetched batch is
//! copied once into a read buffer and once into the socket, never into a response frame.
//!
//! The encoder is `kafka-protocol`'s; this only changes where its `put_slice` of a shared
//! field lands. Random access (`seek`/`range`, used by the encoder only for record-batch gaps,
//! and by the frame's length prefix) works on encoded bytes; a range that starts before the
//! last shared chunk and is not inside one encoded chunk first folds the rope back into one
//! owned buffer (a copy, but never wrong).

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Fields shorter than this are copied: a separate chunk costs more than the copy.
pub const SHARE_MIN: usize = 4096;

/// A finished part of a rope: encoded bytes (still patchable) or a shared field.
#[derive(Debug)]
enum Chunk {
    Owned(BytesMut),
    Shared(Bytes),
}

/// An encoder output made of owned and shared chunks.
#[derive(Debug, Default)]
pub struct Rope {
    /// Finished chunks, in order, with the absolute offset each starts at.
    chunks: Vec<(usize, Chunk)>,
    /// Bytes written since the last shared chunk.
    head: BytesMut,
    /// Absolute offset of `head[0]`.
    base: usize,
    /// Buffers whose sub-slices are taken by reference instead of copied.
    shared: Vec<Bytes>,
}

impl Rope {
    /// An empty rope that takes slices of `shared` by reference.
    pub fn new(shared: Vec<Bytes>) -> Rope {
        Rope {
            chunks: Vec::new(),
            head: BytesMut::with_capacity(256),
            base: 0,
            shared,
        }
    }

    /// Total length written.
    pub fn len(&self) -> usize {
        self.base + self.head.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Overwrites bytes at absolute `at` (which must have been written) with `bytes`.
    pub fn patch(&mut self, at: usize, bytes: &[u8]) {
        let end = at + bytes.len();
        self.range(at..end).copy_from_slice(bytes);
    }

    /// The chunks, in order (none empty).
    pub fn into_chunks(self) -> Vec<Bytes> {
        let mut out: Vec<Bytes> = self
            .chunks
            .into_iter()
            .map(|(_, chunk)| match chunk {
                Chunk::Owned(b) => b.freeze(),
                Chunk::Shared(b) => b,
            })
            .collect();
        if !self.head.is_empty() {
            out.push(self.head.freeze());
        }
        out
    }

    /// The `shared` buffer `src` lies within, if any, as a reference to exactly `src`.
    fn shared_slice(&self, src: &[u8]) -> Option<Bytes> {
        let start = src.as_ptr() as usize;
        let end = start + src.len();
        self.shared.iter().find_map(|b| {
            let b_start = b.as_ptr() as usize;
            (b_start <= start && end <= b_start + b.len()).then(|| b.slice_ref(src))
        })
    }

    /// Folds every chunk back into `head` (a copy), so any offset is addressable again.
    fn flatten(&mut self) {
        if self.chunks.is_empty() {
            return;
        }
        let mut all = BytesMut::with_capacity(self.len());
        for (_, chunk) in self.chunks.drain(..) {
            match chunk {
                Chunk::Owned(b) => all.extend_from_slice(&b),
                Chunk::Shared(b) => all.extend_from_slice(&b),
            }
        }
        all.extend_from_slice(&self.head);
        self.head = all;
        self.base = 0;
    }
}

// SAFETY: every method delegates to `head`, a `BytesMut`, whose own `BufMut` implementation
// upholds the trait's contract (`chunk_mut` is writable up to its length, `advance_mut`
// is only called by the caller for bytes it initialized).
unsafe impl BufMut for Rope {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller guarantees `cnt` bytes of `chunk_mut()` (which is `head`'s)
        // were initialized, which is `BytesMut::advance_mut`'s own requirement.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SHARE_MIN
            && let Some(shared) = self.shared_slice(src)
        {
            if !self.head.is_empty() {
                let done = self.head.split();
                let start = self.base;
                self.base += done.len();
                self.chunks.push((start, Chunk::Owned(done)));
            }
            let start = self.base;
            self.base += shared.len();
            self.chunks.push((start, Chunk::Shared(shared)));
            return;
        }
        self.head.extend_from_slice(src);
    }
}

impl ByteBufMut for Rope {
    fn offset(&self) -> usize {
        self.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.base {
            self.flatten();
        }
        self.head.resize(offset - self.base, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        if r.start < self.base {
            // Within one owned chunk (the frame's length prefix, say): patch it in place.
            let owned = self.chunks.iter().position(|(start, chunk)| {
                matches!(chunk, Chunk::Owned(b) if *start <= r.start && r.end <= start + b.len())
            });
            match owned {
                Some(i) => {
                    let (start, chunk) = &mut self.chunks[i];
                    let start = *start;
                    if let Chunk::Owned(b) = chunk {
                        return &mut b[r.start - start..r.end - start];
                    }
                }
                None => self.flatten(),
            }
        }
        let base = self.base;
        &mut self.head[r.start - base..r.end - base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn large_shared_slices_are_referenced_small_ones_copied() {
        let big = Bytes::from(vec![7u8; 10_000]);
        let small = Bytes::from(vec![9u8; 100]);
        let mut rope = Rope::new(vec![big.clone(), small.clone()]);
        rope.put_i32(1);
        rope.put_slice(&big[..]);
        rope.put_i16(2);
        rope.put_slice(&small[..]);
        rope.put_slice(&big[10..5000]);
        assert_eq!(rope.len(), 4 + 10_000 + 2 + 100 + 4990);
        let chunks = rope.into_chunks();
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[1].as_ptr(), big.as_ptr(), "referenced, not copied");
        assert_eq!(chunks[3].as_ptr(), big[10..].as_ptr());
        let mut expected = 1i32.to_be_bytes().to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(&2i16.to_be_bytes());
        expected.extend_from_slice(&small);
        expected.extend_from_slice(&big[10..5000]);
        assert_eq!(concat(&chunks), expected);
    }

    #[test]
    fn unknown_slices_are_copied() {
        let other = vec![3u8; 8192];
        let mut rope = Rope::new(vec![Bytes::from(vec![1u8; 8192])]);
        rope.put_slice(&other);
        let chunks = rope.into_chunks();
        assert_eq!(chunks.len(), 1);
        assert_eq!(&chunks[0][..], &other[..]);
    }

    #[test]
    fn patching_before_a_shared_chunk() {
        let big = Bytes::from(vec![5u8; 5000]);
        let mut rope = Rope::new(vec![big.clone()]);
        rope.put_i32(0);
        rope.put_slice(&big);
        rope.put_u8(1);
        rope.patch(0, &42i32.to_be_bytes());
        let gap = rope.put_gap(2);
        rope.gap_buf(gap).copy_from_slice(&[8, 9]);
        let all = concat(&rope.into_chunks());
        assert_eq!(&all[..4], &42i32.to_be_bytes());
        assert_eq!(&all[4..5004], &big[..]);
        assert_eq!(&all[5004..], &[1, 8, 9]);
    }

    #[test]
    fn a_range_across_a_shared_chunk_folds_the_rope() {
        let big = Bytes::from(vec![5u8; 5000]);
        let mut rope = Rope::new(vec![big.clone()]);
        rope.put_u8(1);
        rope.put_slice(&big);
        rope.put_u8(2);
        rope.patch(0, &[3, 4]);
        let chunks = rope.into_chunks();
        assert_eq!(chunks.len(), 1);
        assert_eq!(&chunks[0][..3], &[3, 4, 5]);
        assert_eq!(chunks[0].len(), 5002);
    }
}
