//! A bounded pool of byte buffers for the TURN relay path, so that relaying a datagram or a TCP frame allocates nothing once the pool is warm.
//!
//! Reader tasks copy each datagram or frame into a buffer taken from the
//! pool and hand it to the TURN task, which gives it back once handled
//! (TCP writers give back what they wrote). The pool is a lock-free
//! bounded queue: taking from an empty pool allocates a new buffer, giving
//! to a full one drops it, and a buffer grown past `MAX_KEPT` by an
//! unusually large datagram is dropped rather than kept.

use crossbeam_queue::ArrayQueue;

/// Capacity of a new buffer: a datagram on a 1500-byte path, with room.
pub const BUF_CAPACITY: usize = 2048;
/// Largest buffer the pool keeps.
const MAX_KEPT: usize = 2 * BUF_CAPACITY;

/// Reusable buffers, at most `capacity` of them idle.
#[derive(Debug)]
pub struct BufPool {
    free: ArrayQueue<Vec<u8>>,
}

impl BufPool {
    pub fn new(capacity: usize) -> BufPool {
        BufPool {
            free: ArrayQueue::new(capacity.max(1)),
        }
    }

    /// A buffer holding a copy of `data` (a pooled one when there is one).
    pub fn copy_of(&self, data: &[u8]) -> Vec<u8> {
        let mut buf = self
            .free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_CAPACITY.max(data.len())));
        buf.clear();
        buf.extend_from_slice(data);
        buf
    }

    /// Gives a buffer back for reuse.
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() > MAX_KEPT {
            return;
        }
        buf.clear();
        let _ = self.free.push(buf);
    }

    /// Buffers waiting for reuse.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_the_pool_is_bounded() {
        let pool = BufPool::new(2);
        let a = pool.copy_of(b"first datagram");
        let where_a = a.as_ptr();
        assert_eq!(a, b"first datagram");
        pool.give(a);
        assert_eq!(pool.idle(), 1);
        // The same allocation comes back, holding only the new bytes.
        let b = pool.copy_of(b"second");
        assert_eq!(b.as_ptr(), where_a);
        assert_eq!(b, b"second");
        // Bounded: a third idle buffer is dropped.
        pool.give(b);
        pool.give(pool.copy_of(b"x"));
        pool.give(Vec::with_capacity(16));
        assert_eq!(pool.idle(), 2);
        // A buffer grown by a jumbo datagram is not kept.
        let pool = BufPool::new(4);
        pool.give(pool.copy_of(&[0u8; 60_000]));
        assert_eq!(pool.idle(), 0);
    }
}
