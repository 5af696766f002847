//! A radix (compressed prefix) tree over token ids with lock counts and LRU
//! eviction of unlocked leaves: SGLang's prefix cache at page size 1.
//!
//! Follows SGLang 0.5.23 `python/sglang/srt/mem_cache/radix_cache.py`
//! (`match_prefix`, `insert`, `inc_lock_ref`/`dec_lock_ref`, `evict`): a match
//! splits a node where it ends inside an edge and refreshes access times;
//! locks walk to the root and move tokens between "evictable" and
//! "protected"; eviction pops the least recently used unlocked leaf, and
//! pushes its parent once that becomes an unlocked leaf.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::fasthash::{U32Map, common_prefix};

/// A node handle.
pub type NodeId = usize;

/// The root (always present, never evicted).
pub const ROOT: NodeId = 0;

#[derive(Debug, Clone)]
struct Node {
    key: Vec<u32>,
    children: Children,
    parent: NodeId,
    lock: u32,
    last_access: u64,
    live: bool,
    /// Bumped each time the slot is reused, so stale heap entries of an
    /// earlier node in the same slot never match.
    generation: u64,
}

/// A node's children by the first token of their edge. Most nodes have at
/// most one (a prompt's leaf and its output): that one is held inline,
/// and a map is made only for a second (a map per node was an allocation
/// and a hash per request).
#[derive(Debug, Clone, Default)]
enum Children {
    #[default]
    None,
    One(u32, NodeId),
    Many(U32Map<NodeId>),
}

impl Children {
    fn get(&self, first: &u32) -> Option<&NodeId> {
        match self {
            Self::None => None,
            Self::One(t, id) => (t == first).then_some(id),
            Self::Many(m) => m.get(first),
        }
    }

    /// Sets the child for `first` (replacing one there, as a map does).
    fn insert(&mut self, first: u32, id: NodeId) {
        match self {
            Self::None => *self = Self::One(first, id),
            Self::One(t, old) if *t == first => *old = id,
            Self::One(t, old) => {
                let mut m = U32Map::default();
                m.insert(*t, *old);
                m.insert(first, id);
                *self = Self::Many(m);
            }
            Self::Many(m) => {
                m.insert(first, id);
            }
        }
    }

    fn remove(&mut self, first: &u32) {
        match self {
            Self::One(t, _) if t == first => *self = Self::None,
            Self::Many(m) => {
                m.remove(first);
            }
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Self::None => true,
            Self::One(..) => false,
            Self::Many(m) => m.is_empty(),
        }
    }
}

/// A candidate for eviction: (last access, node, the node's generation).
type Candidate = Reverse<(u64, NodeId, u64)>;

/// The prefix cache. Sizes are in tokens (one KV slot each).
#[derive(Debug, Clone)]
pub struct RadixCache {
    nodes: Vec<Node>,
    free_ids: Vec<NodeId>,
    clock: u64,
    total: u64,
    evictable: u64,
    /// Every unlocked leaf has an entry here with its current access time;
    /// entries that no longer describe an unlocked leaf are skipped when
    /// popped. SGLang rebuilds this heap on every `evict`; keeping it is
    /// the same order without a scan of the whole tree on each call.
    leaves: BinaryHeap<Candidate>,
}

impl Default for RadixCache {
    fn default() -> Self {
        Self::new()
    }
}

impl RadixCache {
    /// An empty cache.
    pub fn new() -> Self {
        let root = Node {
            key: Vec::new(),
            children: Children::default(),
            parent: ROOT,
            lock: 1,
            last_access: 0,
            live: true,
            generation: 0,
        };
        Self { nodes: vec![root], free_ids: Vec::new(), clock: 0, total: 0, evictable: 0, leaves: BinaryHeap::new() }
    }

    /// Tokens held by the tree.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Tokens in nodes no request holds (reclaimable on demand).
    pub fn evictable(&self) -> u64 {
        self.evictable
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn alloc(&mut self, mut node: Node) -> NodeId {
        match self.free_ids.pop() {
            Some(id) => {
                node.generation = self.nodes[id].generation + 1;
                self.nodes[id] = node;
                id
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    /// Splits `id` after `at` tokens of its edge; returns the new upper node.
    fn split(&mut self, id: NodeId, at: usize) -> NodeId {
        let parent = self.nodes[id].parent;
        let upper_key = self.nodes[id].key[..at].to_vec();
        let lower_key = self.nodes[id].key[at..].to_vec();
        let upper = self.alloc(Node {
            key: upper_key.clone(),
            children: Children::default(),
            parent,
            lock: self.nodes[id].lock,
            last_access: self.nodes[id].last_access,
            live: true,
            generation: 0,
        });
        self.nodes[upper].children.insert(lower_key[0], id);
        self.nodes[parent].children.insert(upper_key[0], upper);
        self.nodes[id].key = lower_key;
        self.nodes[id].parent = upper;
        upper
    }

    /// The longest cached prefix of `tokens`, at most `limit` tokens: its
    /// length and the node where it ends. Refreshes the path's access time.
    pub fn match_prefix(&mut self, tokens: &[u32], limit: usize) -> (usize, NodeId) {
        let tokens = &tokens[..tokens.len().min(limit)];
        let now = self.tick();
        self.walk(tokens, ROOT, 0, now)
    }

    /// [`RadixCache::match_prefix`] of all of `tokens`, given a live node
    /// `from` whose path from the root spells the start of `tokens` (a node
    /// a request holds locked, made from its own ids): the same result and
    /// access times, without comparing that start again. A walk from the
    /// root passes exactly those nodes whole (children differ in their
    /// first token), so they only get the new access time.
    fn match_from(&mut self, tokens: &[u32], from: NodeId) -> (usize, NodeId) {
        let now = self.tick();
        let (mut node, mut depth) = (from, 0);
        while node != ROOT {
            let n = &mut self.nodes[node];
            n.last_access = now;
            depth += n.key.len();
            node = n.parent;
        }
        debug_assert!(depth <= tokens.len(), "the held path is longer than the ids");
        self.walk(tokens, from, depth, now)
    }

    /// The match loop from `node`, `matched` tokens in.
    fn walk(&mut self, tokens: &[u32], mut node: NodeId, mut matched: usize, now: u64) -> (usize, NodeId) {
        while matched < tokens.len() {
            let Some(&child) = self.nodes[node].children.get(&tokens[matched]) else { break };
            let key = &self.nodes[child].key;
            let common = common_prefix(key, &tokens[matched..]);
            if common < key.len() {
                let upper = self.split(child, common);
                self.nodes[upper].last_access = now;
                return (matched + common, upper);
            }
            matched += common;
            node = child;
            self.nodes[node].last_access = now;
        }
        // Only the last node of the path can be a leaf: its access time changed.
        self.candidate(node);
        (matched, node)
    }

    /// Records `id` as an eviction candidate if it is an unlocked leaf.
    fn candidate(&mut self, id: NodeId) {
        let n = &self.nodes[id];
        if id != ROOT && n.live && n.lock == 0 && n.children.is_empty() {
            self.leaves.push(Reverse((n.last_access, id, n.generation)));
        }
    }

    fn is_current(&self, &Reverse((at, id, generation)): &Candidate) -> bool {
        let n = &self.nodes[id];
        n.live && n.generation == generation && n.last_access == at && n.lock == 0 && n.children.is_empty()
    }

    /// Inserts `tokens`; returns (tokens that were already cached, the node
    /// where the sequence ends). New tokens are unlocked (evictable).
    pub fn insert(&mut self, tokens: &[u32]) -> (usize, NodeId) {
        let (matched, node, new) = self.insert_leaf(tokens, ROOT);
        if new {
            self.candidate(node);
        }
        (matched, node)
    }

    /// [`RadixCache::insert`] followed by [`RadixCache::lock`] of the node
    /// it returns. The same tree and the same evictions: a new leaf is
    /// offered for eviction when it is unlocked, not first as an entry
    /// that the lock makes stale at once (one push and one pop fewer per
    /// request on the heap). `held` is ROOT or a live node whose path
    /// spells the start of `tokens` (see [`RadixCache::match_from`]): a
    /// request's checkpoint resumes from the node it holds instead of
    /// comparing its prompt from the root again (this was a third of the
    /// engine's work on 2,300-token shared prefixes).
    pub fn insert_locked(&mut self, tokens: &[u32], held: NodeId) -> (usize, NodeId) {
        let (matched, node, _) = self.insert_leaf(tokens, held);
        self.lock(node);
        (matched, node)
    }

    /// The insert; the bool: a new leaf was made (not yet a candidate).
    fn insert_leaf(&mut self, tokens: &[u32], held: NodeId) -> (usize, NodeId, bool) {
        let (matched, node) = self.match_from(tokens, held);
        if matched == tokens.len() {
            return (matched, node, false);
        }
        let now = self.clock;
        let key = tokens[matched..].to_vec();
        let len = key.len() as u64;
        let first = key[0];
        let leaf = self.alloc(Node {
            key,
            children: Children::default(),
            parent: node,
            lock: 0,
            last_access: now,
            live: true,
            generation: 0,
        });
        self.nodes[node].children.insert(first, leaf);
        self.total += len;
        self.evictable += len;
        (matched, leaf, true)
    }

    /// Protects the path from `node` to the root from eviction.
    pub fn lock(&mut self, mut node: NodeId) {
        while node != ROOT {
            let n = &mut self.nodes[node];
            if n.lock == 0 {
                self.evictable -= n.key.len() as u64;
            }
            n.lock += 1;
            node = n.parent;
        }
    }

    /// Releases one lock on the path from `node` to the root.
    pub fn unlock(&mut self, mut node: NodeId) {
        while node != ROOT {
            let n = &mut self.nodes[node];
            debug_assert!(n.lock > 0, "unlock of an unlocked node");
            n.lock -= 1;
            if n.lock == 0 {
                self.evictable += n.key.len() as u64;
            }
            let parent = n.parent;
            self.candidate(node);
            node = parent;
        }
    }

    /// Evicts least-recently-used unlocked leaves until at least `want`
    /// tokens are freed or nothing is evictable. Returns tokens freed.
    pub fn evict(&mut self, want: u64) -> u64 {
        if want == 0 || self.evictable == 0 {
            return 0;
        }
        if self.leaves.len() > 2 * self.nodes.len() + 1024 {
            // Mostly stale entries: keep only the current ones.
            let leaves = std::mem::take(&mut self.leaves);
            self.leaves = leaves.into_iter().filter(|c| self.is_current(c)).collect();
        }
        let mut freed = 0;
        while freed < want {
            let Some(top) = self.leaves.pop() else { break };
            if !self.is_current(&top) {
                continue;
            }
            let Reverse((_, id, _)) = top;
            let (parent, first, len) = {
                let n = &self.nodes[id];
                (n.parent, n.key[0], n.key.len() as u64)
            };
            self.nodes[parent].children.remove(&first);
            self.nodes[id].live = false;
            self.nodes[id].key = Vec::new();
            self.free_ids.push(id);
            self.total -= len;
            self.evictable -= len;
            freed += len;
            self.candidate(parent);
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RadixCache {
        /// SGLang's eviction as written: a heap of every unlocked leaf,
        /// built afresh (the reference for the kept heap).
        fn evict_by_scan(&mut self, want: u64) -> u64 {
            let mut heap: BinaryHeap<Reverse<(u64, NodeId)>> = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(id, n)| *id != ROOT && n.live && n.lock == 0 && n.children.is_empty())
                .map(|(id, n)| Reverse((n.last_access, id)))
                .collect();
            let mut freed = 0;
            while freed < want {
                let Some(Reverse((_, id))) = heap.pop() else { break };
                let (parent, first, len) = (self.nodes[id].parent, self.nodes[id].key[0], self.nodes[id].key.len());
                self.nodes[parent].children.remove(&first);
                self.nodes[id].live = false;
                self.nodes[id].key = Vec::new();
                self.free_ids.push(id);
                self.total -= len as u64;
                self.evictable -= len as u64;
                freed += len as u64;
                let p = &self.nodes[parent];
                if parent != ROOT && p.lock == 0 && p.children.is_empty() {
                    heap.push(Reverse((p.last_access, parent)));
                }
            }
            freed
        }

        fn shape(&self) -> Vec<(Vec<u32>, u32, u64, bool)> {
            self.nodes.iter().map(|n| (n.key.clone(), n.lock, n.last_access, n.live)).collect()
        }
    }

    #[test]
    fn children_behave_as_a_map() {
        let mut rng = crate::rng::Rng::new(6, 6);
        let (mut c, mut m) = (Children::default(), std::collections::HashMap::new());
        for _ in 0..20_000 {
            let (t, id) = ((rng.next_u64() % 5) as u32, rng.next_u64() as usize);
            match rng.next_u64() % 3 {
                0 => {
                    c.insert(t, id);
                    m.insert(t, id);
                }
                1 => {
                    c.remove(&t);
                    m.remove(&t);
                }
                _ => {}
            }
            assert_eq!(c.get(&t), m.get(&t));
            assert_eq!(c.is_empty(), m.is_empty());
        }
    }

    #[test]
    fn kept_heap_evicts_exactly_as_a_full_scan() {
        let mut rng = crate::rng::Rng::new(3, 0x7AD1);
        let mut a = RadixCache::new();
        let mut b = RadixCache::new();
        // Locked nodes with the ids they were made from.
        let mut locks: Vec<(NodeId, Vec<u32>)> = Vec::new();
        for step in 0..20_000 {
            let seq: Vec<u32> = {
                let prefix = (rng.next_u64() % 6) as u32;
                let len = 1 + (rng.next_u64() % 12) as usize;
                std::iter::once(prefix).chain((0..len).map(|_| (rng.next_u64() % 4) as u32)).collect()
            };
            match rng.next_u64() % 10 {
                0..=3 => {
                    // Insert then lock, or the two in one (no heap entry for
                    // the locked leaf): the same evictions as the scan.
                    let lock = rng.next_u64() % 3;
                    let (x, y) = match lock {
                        0 => (a.insert_locked(&seq, ROOT), b.insert(&seq)),
                        _ => (a.insert(&seq), b.insert(&seq)),
                    };
                    assert_eq!(x, y);
                    if lock < 2 {
                        if lock == 1 {
                            a.lock(x.1);
                        }
                        b.lock(y.1);
                        locks.push((x.1, seq));
                    }
                }
                7 if !locks.is_empty() => {
                    // A request's checkpoint: its longer ids inserted from
                    // the node it holds equal an insert from the root.
                    let (held, ids) = &locks[(rng.next_u64() % locks.len() as u64) as usize];
                    let mut longer = ids.clone();
                    longer.extend((0..rng.next_u64() % 4).map(|_| (rng.next_u64() % 4) as u32));
                    let x = a.insert_locked(&longer, *held);
                    let y = b.insert(&longer);
                    b.lock(y.1);
                    assert_eq!(x, y, "step {step}");
                    locks.push((x.1, longer));
                }
                4..=5 => assert_eq!(a.match_prefix(&seq, usize::MAX), b.match_prefix(&seq, usize::MAX)),
                6 if !locks.is_empty() => {
                    let (n, _) = locks.swap_remove((rng.next_u64() % (locks.len()) as u64) as usize);
                    a.unlock(n);
                    b.unlock(n);
                }
                _ => {
                    let want = rng.next_u64() % 30;
                    assert_eq!(a.evict(want), b.evict_by_scan(want), "step {step}");
                }
            }
            assert_eq!((a.total(), a.evictable()), (b.total(), b.evictable()), "step {step}");
        }
        assert_eq!(a.shape(), b.shape());
    }

    #[test]
    fn match_insert_split_and_share() {
        let mut c = RadixCache::new();
        assert_eq!(c.insert(&[1, 2, 3, 4]).0, 0);
        assert_eq!(c.total(), 4);
        // A sibling sharing [1, 2] splits the edge and adds only [9, 9].
        assert_eq!(c.insert(&[1, 2, 9, 9]).0, 2);
        assert_eq!(c.total(), 6);
        assert_eq!(c.match_prefix(&[1, 2, 3, 4, 5], usize::MAX).0, 4);
        assert_eq!(c.match_prefix(&[1, 2, 3, 4], 3).0, 3, "limit caps the match");
        assert_eq!(c.match_prefix(&[7], usize::MAX).0, 0);
        assert_eq!(c.evictable(), 6);
    }

    #[test]
    fn locks_protect_and_lru_evicts_leaves_first() {
        let mut c = RadixCache::new();
        let (_, a) = c.insert(&[1, 2, 3]);
        c.insert(&[5, 6]);
        c.insert(&[7, 8, 9, 10]);
        c.lock(a);
        assert_eq!((c.total(), c.evictable()), (9, 6));
        // Touch [7..] so [5, 6] is the least recently used.
        c.match_prefix(&[7, 8], usize::MAX);
        assert_eq!(c.evict(1), 2);
        assert_eq!(c.match_prefix(&[5, 6], usize::MAX).0, 0);
        assert_eq!(c.match_prefix(&[7, 8, 9, 10], usize::MAX).0, 4);
        // Locked [1, 2, 3] survives a request for everything.
        assert_eq!(c.evict(100), 4);
        assert_eq!((c.total(), c.evictable()), (3, 0));
        c.unlock(a);
        assert_eq!(c.evictable(), 3);
        assert_eq!(c.evict(100), 3);
        assert_eq!(c.total(), 0);
    }

    #[test]
    fn evicting_a_leaf_exposes_its_parent() {
        let mut c = RadixCache::new();
        c.insert(&[1, 2, 3, 4]);
        c.insert(&[1, 2, 5]);
        // Tree: [1,2] -> {[3,4], [5]}. Evicting 3 tokens takes both leaves,
        // then the parent becomes a leaf and goes too if needed.
        assert_eq!(c.evict(3), 3);
        assert_eq!(c.total(), 2);
        assert_eq!(c.evict(1), 2);
        assert_eq!(c.total(), 0);
    }
}
