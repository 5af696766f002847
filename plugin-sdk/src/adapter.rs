//! Adapters between the generated WIT exports and the [`Router`]/[`Batcher`]
//! traits. The export macros implement the generated traits on these types.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::{
    Batcher, Completion, NodeIndex, NodeState, NodeTable, PluginError, PluginInfo, PluginKind, PollResult, RequestId,
    RequestInfo, RouteDecision, Router, TimeNs, parse_config,
};

fn info(
    kind: PluginKind,
    name: &str,
    version: &str,
    description: &str,
    options: Vec<crate::OptionDoc>,
    capabilities: &[crate::Capability],
) -> PluginInfo {
    PluginInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        kind,
        description: description.to_owned(),
        options,
        capabilities: capabilities.to_vec(),
    }
}

/// After a hook returned: if it was a default one (it does nothing), the
/// host stops calling it.
fn skip_if_default(hook: crate::host::Hook) {
    if crate::took_default_hook() {
        crate::host::skip_hook(hook);
    }
}

struct State<P> {
    plugin: P,
    nodes: NodeTable,
}

/// Holds a [`Router`] and its node table behind the `router` resource.
pub struct RouterAdapter<R> {
    state: RefCell<State<R>>,
    _marker: PhantomData<R>,
}

impl<R: Router> RouterAdapter<R> {
    #[doc(hidden)]
    pub fn plugin_info(version: &str) -> PluginInfo {
        info(PluginKind::Router, R::NAME, version, R::DESCRIPTION, R::options(), R::CAPABILITIES)
    }

    /// Parses the config and builds the router.
    pub fn build(config: &str) -> Result<Self, PluginError> {
        let cfg = parse_config::<R::Config>(config)?;
        let plugin = R::new(cfg).map_err(PluginError::InvalidConfig)?;
        Ok(Self { state: RefCell::new(State { plugin, nodes: NodeTable::default() }), _marker: PhantomData })
    }

    #[doc(hidden)]
    pub fn decide(&self, changed: Vec<NodeState>, request: &RequestInfo) -> RouteDecision {
        let s = &mut *self.state.borrow_mut();
        s.nodes.apply(changed);
        s.plugin.route(request, &s.nodes)
    }

    #[doc(hidden)]
    pub fn dispatched(&self, id: RequestId, node: NodeIndex, now: TimeNs) {
        self.state.borrow_mut().plugin.on_dispatched(id, node, now);
        skip_if_default(crate::host::Hook::OnDispatched);
    }

    #[doc(hidden)]
    pub fn first_token(&self, id: RequestId, node: NodeIndex, now: TimeNs) {
        self.state.borrow_mut().plugin.on_first_token(id, node, now);
        skip_if_default(crate::host::Hook::OnFirstToken);
    }

    #[doc(hidden)]
    pub fn complete(&self, done: &Completion) {
        let s = &mut *self.state.borrow_mut();
        s.plugin.on_complete(done, &s.nodes);
        skip_if_default(crate::host::Hook::OnComplete);
    }

    #[doc(hidden)]
    pub fn tick(&self, now: TimeNs) {
        let s = &mut *self.state.borrow_mut();
        s.plugin.on_tick(now, &s.nodes);
        skip_if_default(crate::host::Hook::OnTick);
    }
}

/// Holds a [`Batcher`] and its node table behind the `batcher` resource.
pub struct BatcherAdapter<B> {
    state: RefCell<State<B>>,
    _marker: PhantomData<B>,
}

impl<B: Batcher> BatcherAdapter<B> {
    #[doc(hidden)]
    pub fn plugin_info(version: &str) -> PluginInfo {
        info(PluginKind::Batcher, B::NAME, version, B::DESCRIPTION, B::options(), B::CAPABILITIES)
    }

    /// Parses the config and builds the batcher.
    pub fn build(config: &str) -> Result<Self, PluginError> {
        let cfg = parse_config::<B::Config>(config)?;
        let plugin = B::new(cfg).map_err(PluginError::InvalidConfig)?;
        Ok(Self { state: RefCell::new(State { plugin, nodes: NodeTable::default() }), _marker: PhantomData })
    }

    #[doc(hidden)]
    pub fn arrival(&self, request: &RequestInfo) {
        let s = &mut *self.state.borrow_mut();
        s.plugin.on_arrival(request, &s.nodes);
    }

    #[doc(hidden)]
    pub fn complete(&self, done: &Completion) {
        let s = &mut *self.state.borrow_mut();
        s.plugin.on_complete(done, &s.nodes);
        skip_if_default(crate::host::Hook::OnComplete);
    }

    #[doc(hidden)]
    pub fn poll_now(&self, now: TimeNs, changed: Vec<NodeState>) -> PollResult {
        let s = &mut *self.state.borrow_mut();
        s.nodes.apply(changed);
        s.plugin.poll(now, &s.nodes)
    }
}
