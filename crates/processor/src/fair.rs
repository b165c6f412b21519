//! Which received commands go into the next batch, and which offsets are
//! then safe to commit.
//!
//! Commands are keyed `tenant/resource`, so one tenant's writes share
//! partitions with everybody else's. Applied strictly in partition order, a
//! tenant that pushes 50,000 writes would hold a quieter tenant's single
//! write behind all of them. Instead the processor reads ahead into a
//! window and fills each batch round-robin across the tenants in it,
//! taking each tenant's commands oldest first. Order per resource (the
//! only order promised) holds because a resource belongs to one tenant and
//! a tenant's commands are always taken as a prefix of what it has waiting.
//!
//! Taking commands out of partition order means the committed offset of a
//! partition is the oldest command of it still waiting (or, when none
//! waits, one past the newest received). After a crash everything from
//! there is delivered again; what had already been applied is answered from
//! its dedup record (P3), never applied twice.
//!
//! The window is bounded by count and by payload bytes (`has_room`), so
//! reading ahead never holds more than so many commands nor so much
//! memory, however large the commands.
//!
//! Pure bookkeeping: no Kafka, no database.

use std::collections::{HashMap, VecDeque};

/// Where a command sits in the command topic, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
    /// Empty for a message without a readable key: it is scheduled as a
    /// tenant of its own (and will be dead-lettered when decoded).
    pub tenant: String,
}

impl Position {
    /// The tenant part of a `tenant/resource` message key.
    pub fn tenant_of(key: Option<&str>) -> String {
        key.and_then(|k| k.split('/').next())
            .unwrap_or_default()
            .to_string()
    }
}

/// Received commands not yet applied, in arrival order.
#[derive(Debug)]
pub struct Window<T> {
    /// Each with its payload's size in bytes.
    waiting: VecDeque<(Position, T, usize)>,
    bytes: usize,
    /// One past the newest offset received, per partition.
    received_up_to: HashMap<i32, i64>,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window {
            waiting: VecDeque::new(),
            bytes: 0,
            received_up_to: HashMap::new(),
        }
    }
}

impl<T> Window<T> {
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Payload bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// May more be read ahead? Below both bounds; an empty window always
    /// has room, so a command larger than `max_bytes` still gets in alone.
    pub fn has_room(&self, max_len: usize, max_bytes: usize) -> bool {
        self.is_empty() || (self.len() < max_len && self.bytes < max_bytes)
    }

    pub fn push(&mut self, at: Position, item: T, bytes: usize) {
        let next = self.received_up_to.entry(at.partition).or_insert(0);
        *next = (*next).max(at.offset + 1);
        self.bytes += bytes;
        self.waiting.push_back((at, item, bytes));
    }

    /// Up to `max` commands, round-robin across tenants in the order they
    /// first appear, each tenant's oldest first. The batch keeps arrival
    /// order, so commands of one resource are applied in the order sent.
    pub fn take_batch(&mut self, max: usize) -> Vec<(Position, T)> {
        if self.waiting.len() <= max {
            self.bytes = 0;
            return self.waiting.drain(..).map(|(at, t, _)| (at, t)).collect();
        }
        let mut queues: Vec<Vec<usize>> = Vec::new();
        let mut queue_of: HashMap<&str, usize> = HashMap::new();
        for (i, (at, _, _)) in self.waiting.iter().enumerate() {
            let q = *queue_of.entry(at.tenant.as_str()).or_insert_with(|| {
                queues.push(Vec::new());
                queues.len() - 1
            });
            queues[q].push(i);
        }
        let mut chosen = vec![false; self.waiting.len()];
        let mut taken = 0;
        'rounds: for round in 0.. {
            let mut any = false;
            for q in &queues {
                if let Some(&i) = q.get(round) {
                    any = true;
                    chosen[i] = true;
                    taken += 1;
                    if taken == max {
                        break 'rounds;
                    }
                }
            }
            if !any {
                break;
            }
        }
        let mut batch = Vec::with_capacity(taken);
        let mut rest = VecDeque::with_capacity(self.waiting.len() - taken);
        for (entry, chosen) in self.waiting.drain(..).zip(chosen) {
            if chosen {
                self.bytes -= entry.2;
                batch.push((entry.0, entry.1));
            } else {
                rest.push_back(entry);
            }
        }
        self.waiting = rest;
        batch
    }

    /// The offset to commit for `partition`: its oldest waiting command, or
    /// one past the newest received when none waits. `None` when nothing of
    /// it was received.
    pub fn commit_offset(&self, partition: i32) -> Option<i64> {
        let oldest_waiting = self
            .waiting
            .iter()
            .filter(|(at, _, _)| at.partition == partition)
            .map(|(at, _, _)| at.offset)
            .min();
        oldest_waiting.or_else(|| self.received_up_to.get(&partition).copied())
    }

    /// Forget partitions this member no longer owns: their next owner
    /// starts from the committed offset, and applying them here as well
    /// would only race it.
    pub fn revoke(&mut self, partitions: &[i32]) {
        self.waiting
            .retain(|(at, _, _)| !partitions.contains(&at.partition));
        self.bytes = self.waiting.iter().map(|(_, _, b)| b).sum();
        self.received_up_to.retain(|p, _| !partitions.contains(p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, offset: i64, tenant: &str) -> Position {
        Position {
            partition,
            offset,
            tenant: tenant.into(),
        }
    }

    /// (partition, offset, tenant, label), in arrival order.
    type Row = (i32, i64, &'static str, &'static str);
    type Case = (&'static [Row], usize, &'static [&'static [&'static str]]);

    fn window(rows: &[Row]) -> Window<&'static str> {
        let mut w = Window::default();
        for &(p, o, t, label) in rows {
            w.push(at(p, o, t), label, 1);
        }
        w
    }

    fn labels(batch: &[(Position, &'static str)]) -> Vec<&'static str> {
        batch.iter().map(|(_, l)| *l).collect()
    }

    #[test]
    fn batches_share_between_tenants_and_keep_each_tenants_order() {
        // (rows, batch size, the batches expected)
        let cases: &[Case] = &[
            // Fewer than a batch: everything, as it came.
            (
                &[(0, 0, "a", "a1"), (0, 1, "b", "b1")],
                10,
                &[&["a1", "b1"]],
            ),
            // A backlog of a, then one write of b: b is in the first batch.
            (
                &[
                    (0, 0, "a", "a1"),
                    (0, 1, "a", "a2"),
                    (0, 2, "a", "a3"),
                    (0, 3, "a", "a4"),
                    (0, 4, "b", "b1"),
                ],
                2,
                &[&["a1", "b1"], &["a2", "a3"], &["a4"]],
            ),
            // Three tenants over two partitions, a batch of three: one each.
            (
                &[
                    (0, 0, "a", "a1"),
                    (1, 0, "a", "a2"),
                    (0, 1, "b", "b1"),
                    (1, 1, "b", "b2"),
                    (0, 2, "c", "c1"),
                ],
                3,
                &[&["a1", "b1", "c1"], &["a2", "b2"]],
            ),
            // A message without a key is its own tenant, not starved either.
            (
                &[(0, 0, "a", "a1"), (0, 1, "a", "a2"), (0, 2, "", "junk")],
                2,
                &[&["a1", "junk"], &["a2"]],
            ),
        ];
        for (rows, max, expected) in cases {
            let mut w = window(rows);
            let mut got = Vec::new();
            while !w.is_empty() {
                got.push(labels(&w.take_batch(*max)));
            }
            let expected: Vec<Vec<&str>> = expected.iter().map(|b| b.to_vec()).collect();
            assert_eq!(got, expected, "rows {rows:?}, batches of {max}");
        }
    }

    #[test]
    fn commit_offset_never_passes_a_waiting_command() {
        let mut w = window(&[
            (0, 10, "a", "a1"),
            (0, 11, "a", "a2"),
            (0, 12, "b", "b1"),
            (1, 5, "a", "a3"),
        ]);
        assert_eq!(w.commit_offset(0), Some(10));
        assert_eq!(w.commit_offset(2), None, "nothing received");
        // a1 and b1 applied (b1 jumped a2); a2 still waits at 11.
        assert_eq!(labels(&w.take_batch(2)), ["a1", "b1"]);
        assert_eq!(w.commit_offset(0), Some(11));
        assert_eq!(w.commit_offset(1), Some(5));
        assert_eq!(labels(&w.take_batch(10)), ["a2", "a3"]);
        assert_eq!(w.commit_offset(0), Some(13));
        assert_eq!(w.commit_offset(1), Some(6));
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut w = window(&[(0, 1, "a", "a1"), (1, 1, "b", "b1"), (2, 7, "c", "c1")]);
        w.revoke(&[0, 2]);
        assert_eq!(w.len(), 1);
        assert_eq!(w.commit_offset(0), None);
        assert_eq!(w.commit_offset(2), None);
        assert_eq!(labels(&w.take_batch(10)), ["b1"]);
    }

    #[test]
    fn read_ahead_is_bounded_by_count_and_by_bytes() {
        // (payload sizes, most commands, most bytes, how many are read
        // ahead before there is no room)
        let cases: &[(&[usize], usize, usize, usize)] = &[
            // The count binds.
            (&[10, 10, 10, 10], 2, 1_000, 2),
            // The bytes bind: 5,000 payloads of 1 MB are not held at once.
            (&[1 << 20; 100], 5_000, 64 << 20, 64),
            (&[400, 400, 400], 10, 1_000, 3),
            (&[600, 600, 600], 10, 1_000, 2),
            // One command larger than the bound still gets in, alone.
            (&[5_000, 1], 10, 1_000, 1),
            // Room for nothing at all is still room for one.
            (&[1, 1], 0, 0, 1),
        ];
        for &(sizes, max_len, max_bytes, admitted) in cases {
            let mut w: Window<usize> = Window::default();
            let mut read = 0;
            for (i, &size) in sizes.iter().enumerate() {
                if !w.has_room(max_len, max_bytes) {
                    break;
                }
                w.push(at(0, i as i64, "a"), i, size);
                read += 1;
            }
            assert_eq!(
                read, admitted,
                "{sizes:?} within {max_len} and {max_bytes} bytes"
            );
            assert_eq!(w.bytes(), sizes[..read].iter().sum::<usize>());
            // Taking a batch frees its bytes.
            let taken: usize = w.take_batch(1).iter().map(|(_, i)| sizes[*i]).sum();
            assert_eq!(w.bytes(), sizes[..read].iter().sum::<usize>() - taken);
            w.revoke(&[0]);
            assert_eq!(w.bytes(), 0);
        }
    }

    #[test]
    fn tenant_is_the_key_up_to_the_first_slash() {
        let cases = [
            (Some("t1/u1"), "t1"),
            (Some("t1"), "t1"),
            (Some("t1/g/x"), "t1"),
            (None, ""),
        ];
        for (key, tenant) in cases {
            assert_eq!(Position::tenant_of(key), tenant, "{key:?}");
        }
    }
}
