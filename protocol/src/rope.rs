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

/// A finished part of a rope: encoded bytes (still patchable), a shared field, or a range of
/// a stand-in (see [`placeholder`]).
#[derive(Debug)]
enum Chunk {
    Owned(BytesMut),
    Shared(Bytes),
    Stand {
        index: usize,
        offset: usize,
        len: usize,
    },
}

/// What a rope is made of, in order: bytes to write, or a range of the `index`th stand-in
/// given to [`Rope::with_stand_ins`], whose bytes the writer sends from elsewhere (a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes to write.
    Bytes(Bytes),
    /// `len` bytes at `offset` of stand-in `index`.
    Stand {
        /// Which stand-in.
        index: usize,
        /// Where in it the range starts.
        offset: usize,
        /// Length of the range.
        len: usize,
    },
}

/// Bytes of address space for stand-ins: zero-filled, never written and never read (the rope
/// only compares addresses), so they cost no memory beyond this static's virtual range.
const STAND_IN_SPACE: usize = 64 << 20;
static STAND_IN: [u8; STAND_IN_SPACE] = [0; STAND_IN_SPACE];

/// Hands out stand-ins for one encoding: distinct address ranges of a static zero buffer,
/// put into a message where a field's real bytes live elsewhere (a fetch response's record
/// batches in a segment file). The encoder writes a stand-in's length and passes its slice
/// to the rope, which records where it goes instead of copying it.
#[derive(Debug, Default)]
pub struct StandIns {
    used: usize,
    taken: Vec<Bytes>,
}

impl StandIns {
    /// A stand-in of `len` bytes, or `None` when this encoding used up the space (64 MiB);
    /// the caller then puts the real bytes in the message.
    pub fn take(&mut self, len: usize) -> Option<Bytes> {
        let end = self.used.checked_add(len)?;
        if end > STAND_IN_SPACE {
            return None;
        }
        let b = Bytes::from_static(&STAND_IN[self.used..end]);
        self.used = end;
        self.taken.push(b.clone());
        Some(b)
    }

    /// The stand-ins taken, in order (their indexes in [`Part::Stand`]).
    pub fn into_vec(self) -> Vec<Bytes> {
        self.taken
    }
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
    /// Stand-ins: their slices become [`Part::Stand`]s.
    stand_ins: Vec<Bytes>,
    /// A stand-in was folded into a copy (a patch across it): the output would be wrong.
    stand_in_folded: bool,
}

impl Rope {
    /// An empty rope that takes slices of `shared` by reference.
    pub fn new(shared: Vec<Bytes>) -> Rope {
        Rope::with_stand_ins(shared, Vec::new())
    }

    /// An empty rope that takes slices of `shared` by reference and turns slices of
    /// `stand_ins` (from [`StandIns`]) into [`Part::Stand`]s, whatever their length.
    pub fn with_stand_ins(shared: Vec<Bytes>, stand_ins: Vec<Bytes>) -> Rope {
        Rope {
            chunks: Vec::new(),
            head: BytesMut::with_capacity(256),
            base: 0,
            shared,
            stand_ins,
            stand_in_folded: false,
        }
    }

    /// The parts, in order (none empty); `None` if a stand-in had to be folded into a copy
    /// (a patch across it), which would send its zeros: a caller bug, never silent.
    pub fn into_parts(mut self) -> Option<Vec<Part>> {
        if self.stand_in_folded {
            return None;
        }
        let mut out: Vec<Part> = std::mem::take(&mut self.chunks)
            .into_iter()
            .map(|(_, chunk)| match chunk {
                Chunk::Owned(b) => Part::Bytes(b.freeze()),
                Chunk::Shared(b) => Part::Bytes(b),
                Chunk::Stand { index, offset, len } => Part::Stand { index, offset, len },
            })
            .collect();
        if !self.head.is_empty() {
            out.push(Part::Bytes(self.head.split().freeze()));
        }
        Some(out)
    }

    /// Which stand-in `src` lies within, as `(index, offset)`.
    fn stand_in(&self, src: &[u8]) -> Option<(usize, usize)> {
        let start = src.as_ptr() as usize;
        let end = start + src.len();
        self.stand_ins.iter().enumerate().find_map(|(i, b)| {
            let b_start = b.as_ptr() as usize;
            (!b.is_empty() && b_start <= start && end <= b_start + b.len())
                .then(|| (i, start - b_start))
        })
    }

    /// Closes `head` into an owned chunk (before a chunk of another kind).
    fn close_head(&mut self) {
        if !self.head.is_empty() {
            let done = self.head.split();
            let start = self.base;
            self.base += done.len();
            self.chunks.push((start, Chunk::Owned(done)));
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

    /// The chunks, in order (none empty), of a rope made with [`Rope::new`] (no stand-ins).
    pub fn into_chunks(self) -> Vec<Bytes> {
        debug_assert!(self.stand_ins.is_empty(), "a rope with stand-ins has parts");
        self.into_parts()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|part| match part {
                Part::Bytes(b) => Some(b),
                Part::Stand { .. } => None,
            })
            .collect()
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
                Chunk::Stand { len, .. } => {
                    self.stand_in_folded = true;
                    all.resize(all.len() + len, 0);
                }
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
        if !src.is_empty()
            && let Some((index, offset)) = self.stand_in(src)
        {
            self.close_head();
            let start = self.base;
            self.base += src.len();
            self.chunks.push((
                start,
                Chunk::Stand {
                    index,
                    offset,
                    len: src.len(),
                },
            ));
            return;
        }
        if src.len() >= SHARE_MIN
            && let Some(shared) = self.shared_slice(src)
        {
            self.close_head();
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

    #[test]
    fn stand_ins_become_parts_and_other_slices_are_copied() {
        let mut stand_ins = StandIns::default();
        let below = stand_ins.take(100).unwrap();
        let small = stand_ins.take(3).unwrap();
        let large = stand_ins.take(10_000).unwrap();
        // `below` lies at a lower address than the rope's stand-ins: copied (zeros), and no
        // address arithmetic goes wrong on the way.
        let mut rope = Rope::with_stand_ins(Vec::new(), vec![small.clone(), large.clone()]);
        rope.put_u8(1);
        rope.put_slice(&below);
        rope.put_slice(&small);
        rope.put_slice(&large[10..]);
        rope.put_u8(2);
        let parts = rope.into_parts().unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Bytes(Bytes::from([&[1u8][..], &[0u8; 100][..]].concat())),
                Part::Stand {
                    index: 0,
                    offset: 0,
                    len: 3
                },
                Part::Stand {
                    index: 1,
                    offset: 10,
                    len: 9_990
                },
                Part::Bytes(Bytes::from_static(&[2])),
            ]
        );
    }

    #[test]
    fn a_patch_across_a_stand_in_is_refused_not_sent_as_zeros() {
        let mut stand_ins = StandIns::default();
        let s = stand_ins.take(10).unwrap();
        let mut rope = Rope::with_stand_ins(Vec::new(), vec![s.clone()]);
        rope.put_u8(1);
        rope.put_slice(&s);
        rope.put_u8(2);
        rope.patch(0, &[3, 4]);
        assert_eq!(rope.into_parts(), None);
    }

    #[test]
    fn stand_ins_run_out_at_their_space() {
        let mut stand_ins = StandIns::default();
        assert!(stand_ins.take(STAND_IN_SPACE - 1).is_some());
        assert!(stand_ins.take(2).is_none());
        assert!(stand_ins.take(1).is_some());
    }
}
