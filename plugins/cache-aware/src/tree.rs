//! The approximate radix tree of sglang-router's `cache_aware` policy.
//!
//! Re-implemented from sglang-router 0.3.2 (SMG 0.3.2), `src/policies/tree.rs`
//! as described in `shared/reference/routing.md` §1.3.3: a tree keyed on the
//! characters of the routing text (no tokenization); each node records which
//! tenants (nodes of the run) have inserted through it and when; a node
//! remembers the tenant that created it (`last_tenant`), and a prefix match
//! answers with that tenant; per-tenant character counts drive LRU eviction
//! of that tenant's leaves.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

const ROOT: usize = 0;

#[derive(Debug, Clone)]
struct Node {
    /// Edge label from the parent (empty at the root).
    text: String,
    /// Characters in `text`.
    chars: u64,
    /// (first character of the child's label, child).
    children: Vec<(char, usize)>,
    parent: usize,
    /// (tenant, last access epoch).
    tenants: Vec<(u32, u64)>,
    /// The tenant that created this node.
    last_tenant: u32,
    alive: bool,
}

/// Tenants are node indices of the run.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
    free: Vec<usize>,
    /// Characters each tenant holds in the tree.
    held: Vec<u64>,
    epoch: u64,
    matches: u64,
    /// Bumped by every call that may change the tree's shape (insert,
    /// remove_tenant, evict): a [`Walk`] is good only while this has not
    /// moved.
    changes: u64,
}

/// The nodes a prefix match passed through whole (the root excluded) and
/// the bytes of the text they cover: an insert of the same text into the
/// unchanged tree resumes there instead of comparing the text again (the
/// routing text runs to thousands of characters and was walked twice).
#[derive(Debug, Default)]
pub struct Walk {
    nodes: Vec<usize>,
    bytes: usize,
    /// The tree's `changes` when the walk was made.
    stamp: Option<u64>,
}

impl Walk {
    /// Forgets the walk (the next insert walks from the root).
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.bytes = 0;
        self.stamp = None;
    }
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes and characters `a` and `b` share at the start. Compares bytes,
/// 64 and then eight at a time (routing texts run to thousands of
/// characters), then backs off to a character boundary: the same answer as
/// comparing character by character. `a_chars` is `a`'s length in
/// characters (a node keeps it): a whole label matched needs no count.
fn common_prefix(a: &str, a_chars: u64, b: &str) -> (usize, u64) {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let len = x.len().min(y.len());
    let mut n = equal_chunks(x[..len].as_chunks::<64>().0, y[..len].as_chunks::<64>().0);
    // The first differing word is found here.
    while n + 8 <= len {
        let (p, q) = (
            u64::from_le_bytes(x[n..n + 8].try_into().expect("8 bytes")),
            u64::from_le_bytes(y[n..n + 8].try_into().expect("8 bytes")),
        );
        if p != q {
            n += ((p ^ q).trailing_zeros() / 8) as usize;
            break;
        }
        n += 8;
    }
    if n + 8 > len {
        while n < len && x[n] == y[n] {
            n += 1;
        }
    }
    // A multi-byte character that differs in a later byte is not shared.
    while !a.is_char_boundary(n) {
        n -= 1;
    }
    if n == a.len() {
        return (n, a_chars);
    }
    (n, char_count(&a[..n]))
}

/// Bytes in the leading 64-byte chunks on which `xs` and `ys` agree. In
/// wasm, four 16-byte vector compares a chunk: this loop was most of a
/// cache-aware run's plugin time, at about 19 instructions per eight-byte
/// word without them (and the loop's own bookkeeping, with its epoch
/// check, is paid once per 64 bytes).
#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "simd128")]
fn equal_chunks(xs: &[[u8; 64]], ys: &[[u8; 64]]) -> usize {
    use core::arch::wasm32::{v128, v128_any_true, v128_load, v128_or, v128_xor};
    let mut n = 0;
    for (p, q) in xs.iter().zip(ys) {
        let (p, q) = (p.as_ptr().cast::<v128>(), q.as_ptr().cast::<v128>());
        // SAFETY: each array holds 64 bytes, the four 16-byte loads from
        // each; wasm loads need no alignment.
        let d = unsafe {
            let lane = |i| v128_xor(v128_load(p.add(i)), v128_load(q.add(i)));
            v128_or(v128_or(lane(0), lane(1)), v128_or(lane(2), lane(3)))
        };
        if v128_any_true(d) {
            break;
        }
        n += 64;
    }
    n
}

/// [`equal_chunks`] off wasm (the plugin's native tests), eight words a chunk.
#[cfg(not(target_arch = "wasm32"))]
fn equal_chunks(xs: &[[u8; 64]], ys: &[[u8; 64]]) -> usize {
    let word = |s: &[u8; 64], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    xs.iter().zip(ys).take_while(|(p, q)| (0..8).all(|i| word(p, 8 * i) == word(q, 8 * i))).count() * 64
}

/// Characters in `s`: its bytes less its UTF-8 continuation bytes
/// (`10xxxxxx`), counted eight bytes a step. `str::chars().count()` went a
/// 32-bit word a step in wasm, and each routing text's unmatched tail
/// (thousands of characters) is counted.
pub(crate) fn char_count(s: &str) -> u64 {
    let (words, rest) = s.as_bytes().as_chunks::<8>();
    let mut continuation = 0;
    for w in words {
        let w = u64::from_le_bytes(*w);
        // Bit 7 of each byte, where bit 6 (moved up by the shift) is clear.
        continuation += u64::from((w & !(w << 1) & 0x8080_8080_8080_8080).count_ones());
    }
    continuation += rest.iter().filter(|&&b| b & 0xC0 == 0x80).count() as u64;
    s.len() as u64 - continuation
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        let root = Node {
            text: String::new(),
            chars: 0,
            children: Vec::new(),
            parent: ROOT,
            tenants: Vec::new(),
            last_tenant: 0,
            alive: true,
        };
        Self { nodes: vec![root], free: Vec::new(), held: Vec::new(), epoch: 0, matches: 0, changes: 0 }
    }

    /// Characters `tenant` holds.
    pub fn held(&self, tenant: u32) -> u64 {
        self.held.get(tenant as usize).copied().unwrap_or(0)
    }

    fn child(&self, node: usize, c: char) -> Option<usize> {
        self.nodes[node].children.iter().find(|(k, _)| *k == c).map(|&(_, n)| n)
    }

    fn alloc(&mut self, node: Node) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    /// Adds `tenant` to `node` (or refreshes its epoch); counts its characters once.
    fn touch(&mut self, node: usize, tenant: u32, epoch: u64) {
        let n = &mut self.nodes[node];
        match n.tenants.iter_mut().find(|(t, _)| *t == tenant) {
            Some(slot) => slot.1 = epoch,
            None => {
                n.tenants.push((tenant, epoch));
                let chars = n.chars;
                if self.held.len() <= tenant as usize {
                    self.held.resize(tenant as usize + 1, 0);
                }
                self.held[tenant as usize] += chars;
            }
        }
    }

    /// Splits `node` after `bytes` bytes (`chars` characters) of its label;
    /// returns the new upper node, which inherits the tenants.
    fn split(&mut self, node: usize, bytes: usize, chars: u64) -> usize {
        let old = &self.nodes[node];
        let parent = old.parent;
        let upper = Node {
            text: old.text[..bytes].to_owned(),
            chars,
            children: Vec::new(),
            parent,
            tenants: old.tenants.clone(),
            last_tenant: old.last_tenant,
            alive: true,
        };
        let upper = self.alloc(upper);
        let lower = &mut self.nodes[node];
        lower.text.drain(..bytes);
        lower.chars -= chars;
        lower.parent = upper;
        let first = lower.text.chars().next().expect("a split leaves a non-empty lower label");
        self.nodes[upper].children.push((first, node));
        let upper_first = self.nodes[upper].text.chars().next().expect("non-empty upper label");
        if let Some(slot) = self.nodes[parent].children.iter_mut().find(|(c, _)| *c == upper_first) {
            slot.1 = upper;
        }
        upper
    }

    /// Records that `tenant` now caches `text`.
    pub fn insert(&mut self, text: &str, tenant: u32) {
        self.insert_from(text, tenant, None);
    }

    /// [`Tree::insert`] of the `text` that `walk` was made for by
    /// [`Tree::prefix_match_walk`]: the same result, without comparing the
    /// part of the text the walk passed, unless the tree changed since.
    pub fn insert_walked(&mut self, text: &str, tenant: u32, walk: &Walk) {
        let resume = (walk.stamp == Some(self.changes) && walk.bytes <= text.len()).then_some(walk);
        self.insert_from(text, tenant, resume);
    }

    fn insert_from(&mut self, text: &str, tenant: u32, walk: Option<&Walk>) {
        self.changes += 1;
        self.epoch += 1;
        let epoch = self.epoch;
        let mut cur = ROOT;
        self.touch(ROOT, tenant, epoch);
        let mut rest = text;
        if let Some(w) = walk {
            // The nodes a walk from the root would pass through whole, in
            // the same order.
            for &n in &w.nodes {
                self.touch(n, tenant, epoch);
            }
            cur = w.nodes.last().copied().unwrap_or(ROOT);
            rest = &text[w.bytes..];
        }
        while let Some(c) = rest.chars().next() {
            let Some(mut ch) = self.child(cur, c) else {
                let leaf = Node {
                    text: rest.to_owned(),
                    chars: char_count(rest),
                    children: Vec::new(),
                    parent: cur,
                    tenants: Vec::new(),
                    last_tenant: tenant,
                    alive: true,
                };
                let leaf = self.alloc(leaf);
                self.nodes[cur].children.push((c, leaf));
                self.touch(leaf, tenant, epoch);
                return;
            };
            let (bytes, chars) = common_prefix(&self.nodes[ch].text, self.nodes[ch].chars, rest);
            if bytes < self.nodes[ch].text.len() {
                ch = self.split(ch, bytes, chars);
            }
            self.touch(ch, tenant, epoch);
            rest = &rest[bytes..];
            cur = ch;
        }
    }

    /// The longest cached prefix of `text`: (matched characters, the tenant
    /// the router would pick). A match that ends inside a node's label counts
    /// the shared characters; the tenant is the deepest matched node's
    /// creator, or (if that one has left the node) its lowest-numbered tenant.
    pub fn prefix_match(&mut self, text: &str) -> (u64, Option<u32>) {
        let (chars, _, tenant) = self.prefix_match_walk(text, &mut Walk::default());
        (chars, tenant)
    }

    /// [`Tree::prefix_match`], also answering the matched bytes and
    /// filling `walk` for [`Tree::insert_walked`].
    pub fn prefix_match_walk(&mut self, text: &str, walk: &mut Walk) -> (u64, usize, Option<u32>) {
        walk.clear();
        walk.stamp = Some(self.changes);
        let (mut cur, mut matched, mut rest) = (ROOT, 0, text);
        let mut partial = 0;
        while let Some(c) = rest.chars().next() {
            let Some(ch) = self.child(cur, c) else { break };
            let (bytes, chars) = common_prefix(&self.nodes[ch].text, self.nodes[ch].chars, rest);
            matched += chars;
            cur = ch;
            if bytes < self.nodes[ch].text.len() {
                partial = bytes;
                break;
            }
            walk.nodes.push(ch);
            rest = &rest[bytes..];
        }
        walk.bytes = text.len() - rest.len();
        let matched_bytes = walk.bytes + partial;
        if cur == ROOT {
            return (0, 0, None);
        }
        let n = &self.nodes[cur];
        let tenant = if n.tenants.iter().any(|&(t, _)| t == n.last_tenant) {
            Some(n.last_tenant)
        } else {
            n.tenants.iter().map(|&(t, _)| t).min()
        };
        // Like the original, a match refreshes the access time only 1 in 8
        // times, so the LRU order is approximate.
        self.matches += 1;
        if let Some(t) = tenant
            && self.matches.is_multiple_of(8)
        {
            self.epoch += 1;
            let epoch = self.epoch;
            self.touch(cur, t, epoch);
        }
        (matched, matched_bytes, tenant)
    }

    fn detach(&mut self, node: usize) {
        let parent = self.nodes[node].parent;
        self.nodes[parent].children.retain(|&(_, c)| c != node);
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            stack.extend(self.nodes[n].children.iter().map(|&(_, c)| c));
            let dead = &mut self.nodes[n];
            dead.alive = false;
            dead.children.clear();
            dead.text.clear();
            dead.tenants.clear();
            self.free.push(n);
        }
    }

    /// Forgets everything `tenant` cached.
    pub fn remove_tenant(&mut self, tenant: u32) {
        self.changes += 1;
        let mut emptied = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if n.alive && n.tenants.iter().any(|&(t, _)| t == tenant) {
                n.tenants.retain(|&(t, _)| t != tenant);
                if i != ROOT && n.tenants.is_empty() {
                    emptied.push(i);
                }
            }
        }
        // A child's tenants are a subset of its parent's: detaching the
        // topmost emptied nodes removes the rest with them.
        for i in emptied {
            if self.nodes[i].alive && self.nodes[self.nodes[i].parent].alive {
                let parent = self.nodes[i].parent;
                if parent == ROOT || !self.nodes[parent].tenants.is_empty() {
                    self.detach(i);
                }
            }
        }
        if let Some(h) = self.held.get_mut(tenant as usize) {
            *h = 0;
        }
    }

    fn is_leaf_of(&self, node: usize, tenant: u32) -> bool {
        node != ROOT
            && self.nodes[node].tenants.iter().any(|&(t, _)| t == tenant)
            && !self.nodes[node].children.iter().any(|&(_, c)| self.nodes[c].tenants.iter().any(|&(t, _)| t == tenant))
    }

    /// For each tenant holding more than `max_chars` characters, drops its
    /// least recently used leaves until it holds at most `max_chars`.
    pub fn evict(&mut self, max_chars: u64) {
        self.changes += 1;
        for tenant in 0..self.held.len() as u32 {
            if self.held(tenant) <= max_chars {
                continue;
            }
            let mut heap: BinaryHeap<Reverse<(u64, usize)>> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].alive && self.is_leaf_of(i, tenant))
                .map(|i| Reverse((self.epoch_of(i, tenant), i)))
                .collect();
            while self.held(tenant) > max_chars {
                let Some(Reverse((_, leaf))) = heap.pop() else { break };
                let n = &mut self.nodes[leaf];
                n.tenants.retain(|&(t, _)| t != tenant);
                self.held[tenant as usize] -= n.chars;
                let parent = n.parent;
                if n.tenants.is_empty() {
                    self.detach(leaf);
                }
                if self.is_leaf_of(parent, tenant) {
                    heap.push(Reverse((self.epoch_of(parent, tenant), parent)));
                }
            }
        }
    }

    fn epoch_of(&self, node: usize, tenant: u32) -> u64 {
        self.nodes[node].tenants.iter().find(|&&(t, _)| t == tenant).map_or(0, |&(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The character-by-character comparison the fast one must equal.
    fn common_prefix_by_chars(a: &str, b: &str) -> (usize, u64) {
        let (mut bytes, mut chars) = (0, 0);
        for (x, y) in a.chars().zip(b.chars()) {
            if x != y {
                break;
            }
            bytes += x.len_utf8();
            chars += 1;
        }
        (bytes, chars)
    }

    #[test]
    fn fast_common_prefix_equals_the_char_by_char_one() {
        let alphabet = ["a", "b", "é", "ê", "字", "子", "🙂", " "];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        for _ in 0..20_000 {
            let shared: String = (0..next(40)).map(|_| alphabet[next(alphabet.len())]).collect();
            let a = shared.clone() + &(0..next(12)).map(|_| alphabet[next(alphabet.len())]).collect::<String>();
            let b = shared + &(0..next(12)).map(|_| alphabet[next(alphabet.len())]).collect::<String>();
            assert_eq!(common_prefix(&a, a.chars().count() as u64, &b), common_prefix_by_chars(&a, &b), "{a:?} {b:?}");
        }
    }

    #[test]
    fn char_count_equals_chars_count() {
        let alphabet = ["a", "7", " ", "é", "字", "🙂"];
        let mut state: u64 = 0x5851_F42D_4C95_7F2D;
        for len in 0..300 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let text: String = (0..len).map(|i| alphabet[((state >> 33) as usize + i * 7) % alphabet.len()]).collect();
            for start in text.char_indices().map(|(i, _)| i).take(9) {
                assert_eq!(char_count(&text[start..]), text[start..].chars().count() as u64, "{text:?}");
            }
        }
    }

    #[test]
    fn an_insert_resumed_from_a_walk_equals_one_from_the_root() {
        // Texts sharing heads (as a group's prompts do), with multi-byte
        // characters; tenants removed and trees evicted in between, which
        // must make the walk stale.
        let alphabet = ["a", "b", "é", "字", "🙂", " "];
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        let heads: Vec<String> =
            (0..6).map(|_| (0..next(30)).map(|_| alphabet[next(alphabet.len())]).collect()).collect();
        let (mut plain, mut walked, mut walk) = (Tree::new(), Tree::new(), Walk::default());
        let mut resumed = 0;
        for i in 0..5_000 {
            let text = heads[next(heads.len())].clone()
                + &(0..next(10)).map(|_| alphabet[next(alphabet.len())]).collect::<String>();
            let tenant = next(4) as u32;
            let a = plain.prefix_match(&text);
            let (chars, bytes, t) = walked.prefix_match_walk(&text, &mut walk);
            assert_eq!(a, (chars, t), "{text:?}");
            assert_eq!(chars + text[bytes..].chars().count() as u64, text.chars().count() as u64, "{text:?}");
            if i % 97 == 0 {
                plain.remove_tenant(tenant);
                walked.remove_tenant(tenant);
            }
            resumed += usize::from(walk.stamp == Some(walked.changes));
            plain.insert(&text, tenant);
            walked.insert_walked(&text, tenant, &walk);
            if i % 251 == 0 {
                plain.evict(200);
                walked.evict(200);
            }
            assert_eq!(format!("{plain:?}"), format!("{walked:?}"), "after {i} inserts");
        }
        assert!(resumed > 4_900, "{resumed} inserts resumed from a walk");
    }

    #[test]
    fn matches_count_characters_and_answer_with_the_creator() {
        let mut t = Tree::new();
        t.insert("hello world", 0);
        t.insert("hello there", 1);
        // "hello " is shared; the split node keeps tenant 0 as its creator.
        assert_eq!(t.prefix_match("hello world!"), (11, Some(0)));
        assert_eq!(t.prefix_match("hello thereabouts"), (11, Some(1)));
        assert_eq!(t.prefix_match("hello you"), (6, Some(0)));
        assert_eq!(t.prefix_match("help"), (3, Some(0)));
        assert_eq!(t.prefix_match("xyz"), (0, None));
        assert_eq!(t.prefix_match("héllo"), (1, Some(0)));
        // Tenant 0 holds "hello " + "world" = 11 chars, tenant 1 "hello " + "there".
        assert_eq!((t.held(0), t.held(1)), (11, 11));
    }

    #[test]
    fn removing_a_tenant_wipes_its_nodes_and_hands_shared_ones_over() {
        let mut t = Tree::new();
        t.insert("abcdef", 0);
        t.insert("abcxyz", 1);
        t.remove_tenant(0);
        assert_eq!(t.held(0), 0);
        assert_eq!(t.prefix_match("abcdef"), (3, Some(1)), "the shared node now answers with tenant 1");
        assert_eq!(t.prefix_match("abcxyz"), (6, Some(1)));
    }

    #[test]
    fn eviction_drops_least_recently_inserted_leaves_first() {
        let mut t = Tree::new();
        t.insert("aaaa", 0);
        t.insert("bbbb", 0);
        t.insert("cccc", 0);
        t.insert("bbbb", 0); // refreshes bbbb
        t.evict(8);
        assert_eq!(t.held(0), 8);
        assert_eq!(t.prefix_match("aaaa").0, 0, "oldest leaf evicted");
        assert_eq!(t.prefix_match("bbbb").0, 4);
        assert_eq!(t.prefix_match("cccc").0, 4);
        // An inner node becomes a leaf once its children are gone.
        let mut t = Tree::new();
        t.insert("xxyy", 1);
        t.insert("xxzz", 1);
        t.evict(0);
        assert_eq!((t.held(1), t.prefix_match("xxyy").0), (0, 0));
    }
}
