use super::*;
use crate::policy::PollResult;

/// Releases up to `cap` in flight, FIFO; records the updates it saw.
#[derive(Default)]
struct CapBatcher {
    cap: usize,
    queue: VecDeque<RequestId>,
    in_flight: usize,
    updates: Vec<NodeUpdate>,
    bogus: Option<RequestId>,
    polls: usize,
}

impl BatchPolicy for CapBatcher {
    fn name(&self) -> &str {
        "cap"
    }
    fn on_nodes(&mut self, u: &NodeUpdate) -> Result<(), PolicyError> {
        self.updates.push(u.clone());
        Ok(())
    }
    fn on_arrival(&mut self, r: &RequestInfo) -> Result<(), PolicyError> {
        self.queue.push_back(r.id);
        Ok(())
    }
    fn on_complete(&mut self, _: &Completion) -> Result<(), PolicyError> {
        self.in_flight -= 1;
        Ok(())
    }
    fn poll(&mut self, now: Nanos) -> Result<PollResult, PolicyError> {
        self.polls += 1;
        let mut release = Vec::new();
        while self.in_flight < self.cap {
            let Some(id) = self.queue.pop_front() else { break };
            self.in_flight += 1;
            release.push(id);
        }
        release.extend(self.bogus.take());
        Ok(PollResult { release, wake_at: Some(now + 1000) })
    }
}

/// Scripted router: answers from a list.
struct Script {
    answers: VecDeque<RouteDecision>,
    ticks: Vec<Nanos>,
    seen: Vec<NodeUpdate>,
}

impl RoutePolicy for Script {
    fn name(&self) -> &str {
        "script"
    }
    fn on_nodes(&mut self, u: &NodeUpdate) -> Result<(), PolicyError> {
        self.seen.push(u.clone());
        Ok(())
    }
    fn route(&mut self, _: &RequestInfo) -> Result<RouteDecision, PolicyError> {
        Ok(self.answers.pop_front().expect("script ran out"))
    }
    fn on_dispatched(&mut self, _: RequestId, _: NodeIndex, _: Nanos) -> Result<(), PolicyError> {
        Ok(())
    }
    fn on_first_token(&mut self, _: RequestId, _: NodeIndex, _: Nanos) -> Result<(), PolicyError> {
        Ok(())
    }
    fn on_complete(&mut self, _: &Completion) -> Result<(), PolicyError> {
        Ok(())
    }
    fn on_tick(&mut self, now: Nanos) -> Result<(), PolicyError> {
        self.ticks.push(now);
        Ok(())
    }
}

fn info(id: RequestId, input: u32, out: u32) -> RequestInfo {
    RequestInfo {
        id,
        arrival_ns: 0,
        input_tokens: input,
        max_new_tokens: out,
        prefix_hashes: vec![],
        prefix_block_tokens: 16,
        priority: 0,
        session: None,
    }
}

fn script(a: &[RouteDecision]) -> Script {
    Script { answers: a.iter().copied().collect(), ticks: vec![], seen: vec![] }
}

#[test]
fn releases_routes_and_keeps_books() {
    use RouteDecision::*;
    let mut d = Dispatcher::new(2, 3);
    let mut b = CapBatcher { cap: 2, ..Default::default() };
    let mut r = script(&[Dispatch(1), Dispatch(0), Dispatch(1)]);
    let mut out = vec![];
    for id in 0..3 {
        d.arrive(info(id, 100 + id as u32, 10), &mut b).unwrap();
    }
    assert_eq!(d.queued(), 3);
    let wake = d.step(5, &mut b, &mut r, &mut out).unwrap();
    assert_eq!(wake, Some(1005));
    assert_eq!(out, vec![Action::Send { id: 0, node: 1 }, Action::Send { id: 1, node: 0 }]);
    assert_eq!((d.queued(), d.in_flight()), (1, 2));
    let n1 = d.nodes()[1];
    assert_eq!(
        (n1.in_flight, n1.waiting_first_token, n1.in_flight_input_tokens, n1.remaining_output_tokens),
        (1, 1, 100, 10)
    );
    // The router saw all nodes first, then only node 1 changed before the 2nd route.
    assert_eq!(r.seen[0].changed.len(), 2);
    assert_eq!(r.seen[1].changed.iter().map(|n| n.index).collect::<Vec<_>>(), vec![1]);
    assert_eq!(r.seen[1].generation, 2);

    d.first_token(20, 0, 15, &mut r).unwrap();
    assert_eq!(d.nodes()[1].waiting_first_token, 0);
    assert_eq!(d.nodes()[1].remaining_output_tokens, 9);
    assert_eq!(d.nodes()[1].ewma_ttft_ns, 15);
    let done = d
        .finish(
            Finish { id: 0, outcome: Outcome::Ok, ttft_ns: Some(15), latency_ns: 105, output_tokens: 10 },
            &mut b,
            &mut r,
        )
        .unwrap();
    assert_eq!(done.node, 1);
    let n1 = d.nodes()[1];
    assert_eq!((n1.in_flight, n1.in_flight_input_tokens, n1.remaining_output_tokens, n1.completed), (0, 0, 0, 1));
    assert_eq!(n1.ewma_itl_ns, 10);
    // The batcher heard about node 1's change before the completion.
    assert_eq!(b.updates.last().unwrap().changed[0].completed, 1);

    out.clear();
    d.step(30, &mut b, &mut r, &mut out).unwrap();
    assert_eq!(out, vec![Action::Send { id: 2, node: 1 }]);
}

#[test]
fn defer_holds_the_line_and_reject_is_reported() {
    use RouteDecision::*;
    let mut d = Dispatcher::new(1, 3);
    let mut b = CapBatcher { cap: 10, ..Default::default() };
    let mut r = script(&[Reject(RejectReason::Policy), Defer(Some(500)), Dispatch(0), Dispatch(0)]);
    let mut out = vec![];
    for id in 0..3 {
        d.arrive(info(id, 1, 1), &mut b).unwrap();
    }
    let wake = d.step(10, &mut b, &mut r, &mut out).unwrap();
    assert_eq!(out, vec![Action::Reject { id: 0, reason: RejectReason::Policy }]);
    assert_eq!(d.pending_route(), 2);
    assert_eq!(wake, Some(500));
    out.clear();
    d.step(500, &mut b, &mut r, &mut out).unwrap();
    assert_eq!(r.ticks, vec![500]);
    assert_eq!(out, vec![Action::Send { id: 1, node: 0 }, Action::Send { id: 2, node: 0 }]);
}

#[test]
fn invalid_answers_are_errors_naming_plugin_and_call() {
    let mut d = Dispatcher::new(2, 2);
    let mut b = CapBatcher { cap: 1, ..Default::default() };
    let mut r = script(&[RouteDecision::Dispatch(7)]);
    d.arrive(info(0, 1, 1), &mut b).unwrap();
    let err = d.step(0, &mut b, &mut r, &mut vec![]).unwrap_err();
    assert_eq!(err.plugin, "script");
    assert_eq!(err.call, "route");
    assert!(err.cause.contains("node 7") && err.cause.contains("2 node(s)"), "{}", err.cause);

    let mut d = Dispatcher::new(1, 2);
    let mut b = CapBatcher { cap: 0, bogus: Some(1), ..Default::default() };
    d.arrive(info(0, 1, 1), &mut b).unwrap();
    let err = d.step(0, &mut b, &mut script(&[]), &mut vec![]).unwrap_err();
    assert_eq!((err.kind, err.call), ("batching", "poll"));
    assert!(err.cause.contains("request 1"), "{}", err.cause);
}

#[test]
fn abort_returns_every_unsent_request() {
    let mut d = Dispatcher::new(1, 4);
    let mut b = CapBatcher { cap: 1, ..Default::default() };
    let mut r = script(&[RouteDecision::Dispatch(0)]);
    for id in 0..3 {
        d.arrive(info(id, 1, 1), &mut b).unwrap();
    }
    d.step(0, &mut b, &mut r, &mut vec![]).unwrap();
    assert_eq!(d.abort_unsent(), vec![1, 2]);
    assert_eq!((d.queued(), d.in_flight()), (0, 1));
}

#[test]
fn an_empty_queue_is_not_polled() {
    let mut d = Dispatcher::new(1, 2);
    let mut b = CapBatcher { cap: 5, ..Default::default() };
    let mut r = script(&[RouteDecision::Dispatch(0)]);
    let mut out = vec![];
    assert_eq!(d.step(0, &mut b, &mut r, &mut out).unwrap(), None, "nothing queued: no wake-up");
    assert_eq!(b.polls, 0);
    d.arrive(info(0, 10, 4), &mut b).unwrap();
    d.step(1, &mut b, &mut r, &mut out).unwrap();
    assert_eq!((b.polls, out.len()), (1, 1));
    // A first token and a completion change nodes, but nothing waits to be released.
    d.first_token(2, 0, 1, &mut r).unwrap();
    d.step(2, &mut b, &mut r, &mut out).unwrap();
    let f = Finish { id: 0, outcome: Outcome::Ok, ttft_ns: Some(1), latency_ns: 3, output_tokens: 4 };
    d.finish(f, &mut b, &mut r).unwrap();
    assert_eq!(d.step(4, &mut b, &mut r, &mut out).unwrap(), None);
    assert_eq!(b.polls, 1);
    // The next arrival is polled, after the node changes it missed.
    d.arrive(info(1, 10, 4), &mut b).unwrap();
    let mut r = script(&[RouteDecision::Dispatch(0)]);
    d.step(5, &mut b, &mut r, &mut out).unwrap();
    assert_eq!(b.polls, 2);
}
