//! The guest-side node table, kept current from the host's deltas.

use crate::{NodeIndex, NodeState};

/// Every node of the run, as of the last update the host sent.
#[derive(Debug, Clone, Default)]
pub struct NodeTable {
    nodes: Vec<NodeState>,
    generation: u64,
}

impl NodeTable {
    /// A table holding these states (for tests of plugin logic).
    pub fn from_states(nodes: Vec<NodeState>) -> Self {
        Self { nodes, generation: 0 }
    }

    /// A fresh, healthy, idle node.
    pub fn idle(index: NodeIndex) -> NodeState {
        NodeState {
            index,
            healthy: true,
            in_flight: 0,
            waiting_first_token: 0,
            in_flight_input_tokens: 0,
            remaining_output_tokens: 0,
            completed: 0,
            failed: 0,
            ewma_ttft_ns: 0,
            ewma_itl_ns: 0,
            server: None,
        }
    }

    /// Applies a delta from the host: the full state of each node that
    /// changed (the first lists every node). An index past the end grows
    /// the table (the nodes in between start idle); an empty delta is a
    /// no-op.
    pub fn apply(&mut self, changed: Vec<NodeState>) {
        if changed.is_empty() {
            return;
        }
        for state in changed {
            let i = state.index as usize;
            if i >= self.nodes.len() {
                let old = self.nodes.len();
                self.nodes.extend((old..=i).map(|i| Self::idle(i as NodeIndex)));
            }
            self.nodes[i] = state;
        }
        self.generation += 1;
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True before the first update.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// One node's state.
    pub fn get(&self, index: NodeIndex) -> Option<&NodeState> {
        self.nodes.get(index as usize)
    }

    /// All nodes, in index order.
    pub fn iter(&self) -> impl Iterator<Item = &NodeState> {
        self.nodes.iter()
    }

    /// Healthy nodes, in index order.
    pub fn healthy(&self) -> impl Iterator<Item = &NodeState> {
        self.nodes.iter().filter(|n| n.healthy)
    }

    /// How many (non-empty) deltas were applied.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_replace_only_changed_nodes() {
        let mut t = NodeTable::default();
        t.apply((0..3).map(NodeTable::idle).collect());
        assert_eq!(t.len(), 3);
        t.apply(vec![]);
        let mut busy = NodeTable::idle(1);
        busy.in_flight = 7;
        t.apply(vec![busy]);
        assert_eq!(t.get(1).unwrap().in_flight, 7);
        assert_eq!(t.get(0).unwrap().in_flight, 0);
        assert_eq!(t.get(2).unwrap().index, 2);
        assert_eq!(t.generation(), 2);
    }
}
