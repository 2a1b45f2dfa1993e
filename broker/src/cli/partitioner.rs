//! Which partition `produce` sends a record to: Kafka's default partitioner for keyed
//! records (murmur2 of the key, made positive, modulo the partition count, so the CLI puts
//! a key where the Java client and librdkafka's `murmur2_random` put it), and round robin
//! for records without a key.

/// Kafka's murmur2 (seed 0x9747b28c), as 32-bit two's-complement arithmetic.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Chooses partitions for records of one topic.
pub struct Partitioner {
    partitions: i32,
    next: i32,
}

impl Partitioner {
    /// A partitioner over `partitions` (at least 1) partitions; round robin starts at
    /// `start`.
    pub fn new(partitions: i32, start: u32) -> Partitioner {
        let partitions = partitions.max(1);
        Partitioner {
            partitions,
            next: (start % partitions as u32) as i32,
        }
    }

    /// The partition of a record with `key`.
    pub fn partition(&mut self, key: Option<&[u8]>) -> i32 {
        match key {
            Some(k) => (murmur2(k) & 0x7fff_ffff) % self.partitions,
            None => {
                let p = self.next;
                self.next = (self.next + 1) % self.partitions;
                p
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values of Kafka's Utils.murmur2 (also librdkafka's rd_murmur2).
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
    }

    #[test]
    fn keyed_records_hash_and_unkeyed_ones_rotate() {
        let mut p = Partitioner::new(3, 2);
        assert_eq!(p.partition(None), 2);
        assert_eq!(p.partition(None), 0);
        assert_eq!(p.partition(None), 1);
        let k = p.partition(Some(b"key"));
        assert_eq!(p.partition(Some(b"key")), k);
        assert!((0..3).contains(&k));
    }
}
