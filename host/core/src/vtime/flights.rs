//! The requests in flight of a virtual run.

use crate::Nanos;
use crate::session::Attempt;

/// A request in flight. What every token event updates sits inline (one
/// or two cache lines per request); the rest of the attempt is boxed and
/// filled in when the request ends. A decode step touches every running
/// request, and the whole attempt inline was several lines each.
pub(super) struct Flight {
    pub node: u32,
    pub hot: Hot,
    pub attempt: Box<Attempt>,
}

/// The per-token part of an attempt (see [`Flight`]).
pub(super) struct Hot {
    pub to_server: Nanos,
    pub first_token: Option<Nanos>,
    pub decode_length: u32,
    pub token_events: u32,
    pub cached_tokens: u32,
    pub retractions: u32,
    /// An event arrived (`cached_tokens`, `retractions` are the server's).
    pub heard: bool,
    pub token_times: Vec<(Nanos, u32)>,
}

impl Flight {
    /// The whole attempt, for the record.
    pub fn into_attempt(self) -> Attempt {
        let (h, mut a) = (self.hot, *self.attempt);
        a.first_token = h.first_token;
        a.decode_length = h.decode_length;
        a.token_events = h.token_events;
        if h.heard {
            a.cached_tokens = Some(h.cached_tokens);
            a.retractions = Some(h.retractions);
        }
        a.token_times = h.token_times;
        a
    }
}

/// The requests in flight by id: 4 bytes per request of the workload, and
/// a slab of the few in flight (a 100,000-request run holds ~100 attempts,
/// not 100,000).
pub(super) struct Flights {
    slot: Vec<u32>,
    slab: Vec<Option<(u64, Flight)>>,
    free: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl Flights {
    pub fn new(n: usize) -> Self {
        Self { slot: vec![NONE; n], slab: Vec::new(), free: Vec::new() }
    }

    pub fn get(&self, id: u64) -> Option<&Flight> {
        let s = *self.slot.get(id as usize)?;
        self.slab.get(s as usize)?.as_ref().map(|(_, f)| f)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Flight> {
        let s = *self.slot.get(id as usize)?;
        self.slab.get_mut(s as usize)?.as_mut().map(|(_, f)| f)
    }

    pub fn insert(&mut self, id: u64, f: Flight) {
        let s = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some((id, f));
                s
            }
            None => {
                self.slab.push(Some((id, f)));
                (self.slab.len() - 1) as u32
            }
        };
        self.slot[id as usize] = s;
    }

    pub fn take(&mut self, id: u64) -> Option<Flight> {
        let s = std::mem::replace(self.slot.get_mut(id as usize)?, NONE);
        let (_, f) = self.slab.get_mut(s as usize)?.take()?;
        self.free.push(s);
        Some(f)
    }

    /// Ids in flight, in id order (a defined order for cancelling them).
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.slab.iter().flatten().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids
    }
}
