//! The one validation pass over a decoded policy: every rule of `rules.rs` on every
//! value, and the rules that tie fields together (a cooldown within its window, what
//! `escalate` and `verify` may hold). `salve check`, `simulate`, the agent and the
//! operator all end with it, whichever reader decoded the policy.

use super::model::{non_empty_message as empty, *};
use super::rules;
use std::fmt;

/// One step into a policy document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Key(&'static str),
    Index(usize),
}

/// Where a value sits in a policy document, written like a JSON path:
/// `spec.trigger[0].http.timeout`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Step>);

impl FieldPath {
    pub fn key(&self, key: &'static str) -> FieldPath {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key));
        FieldPath(steps)
    }

    pub fn index(&self, index: usize) -> FieldPath {
        let mut steps = self.0.clone();
        steps.push(Step::Index(index));
        FieldPath(steps)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) if i == 0 => write!(f, "{k}")?,
                Step::Key(k) => write!(f, ".{k}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A broken rule and the value it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub at: FieldPath,
    /// Where to point instead when `at` was not written (its default broke the rule
    /// together with this value).
    pub or_at: Option<FieldPath>,
    pub message: String,
}

/// Every rule a policy breaks, in document order.
pub fn validate(policy: &Policy) -> Vec<Violation> {
    let mut v = Checker::default();
    if let Some(namespace) = &policy.metadata.namespace {
        // It names the namespace of every target that names none.
        let at = FieldPath::default().key("metadata").key("namespace");
        v.check(&at, rules::namespace(namespace));
    }
    v.spec(&policy.spec, &FieldPath::default().key("spec"));
    v.found
}

#[derive(Default)]
struct Checker {
    found: Vec<Violation>,
}

impl Checker {
    fn check(&mut self, at: &FieldPath, result: Result<(), String>) {
        if let Err(message) = result {
            self.found.push(Violation {
                at: at.clone(),
                or_at: None,
                message,
            });
        }
    }

    fn rule(&mut self, at: &FieldPath, broken: bool, message: &str) {
        self.check(at, if broken { Err(message.into()) } else { Ok(()) });
    }

    fn spec(&mut self, spec: &PolicySpec, at: &FieldPath) {
        self.target(&spec.target, &at.key("target"));
        match &spec.target {
            Target::Unit(_) => self.host_target(spec, at),
            Target::Haproxy(_) | Target::Nginx(_) => self.load_balancer_target(spec, at),
            _ => self.kubernetes_target(spec, at),
        }
        self.lb_servers_named(spec, at);
        if let Some(fleet) = &spec.fleet {
            let at = at.key("fleet");
            self.rule(
                &at,
                spec.target.is_kubernetes(),
                &format!(
                    "a fleet guard takes its slots in the etcd a host agent's config names, and this policy's target is {}: the operator has no fleet lock (it alone acts for the cluster)",
                    spec.target.kind()
                ),
            );
            self.check(
                &at.key("group"),
                crate::policy::load_balancer::plain_name(&fleet.group, "fleet group"),
            );
            let slots = match fleet.max_concurrent {
                crate::policy::FleetSlots::Count(n) => {
                    rules::whole(u64::from(n), rules::FLEET_SLOTS)
                }
                crate::policy::FleetSlots::Percent(p) => {
                    rules::whole(u64::from(p), rules::FLEET_PERCENT)
                }
            };
            self.check(&at.key("maxConcurrent"), slots);
        }
        if let Some(pause) = &spec.pause {
            let at = at.key("pause");
            self.check(&at.key("until"), rules::utc_time(&pause.until));
            self.check(&at.key("reason"), rules::pause_reason(&pause.reason));
        }
        self.conditions_fit_the_target(spec, at);
        let triggers = at.key("trigger");
        if spec.trigger.is_empty() {
            self.rule(&triggers, true, &empty("trigger condition"));
        }
        for (i, trigger) in spec.trigger.iter().enumerate() {
            self.trigger(trigger, &triggers.index(i));
        }
        let actions = at.key("actions");
        if spec.actions.is_empty() {
            self.rule(&actions, true, &empty("action"));
        }
        self.actions(&spec.actions, &actions);
        self.rule(
            &actions,
            spec.verify.is_none() && spec.actions.iter().any(Action::is_config_edit),
            rules::EDIT_NEEDS_VERIFY,
        );
        let ramps = |actions: &[Action]| {
            actions
                .iter()
                .any(|a| matches!(a, Action::Drain(d) if d.ramp.is_some()))
        };
        self.rule(
            &actions,
            spec.verify.is_none() && ramps(&spec.actions),
            rules::RAMP_NEEDS_VERIFY,
        );
        self.rule(
            &at.key("escalate"),
            ramps(&spec.escalate),
            rules::ESCALATE_NO_RAMP,
        );
        if let Some(verify) = &spec.verify {
            self.verify(verify, &at.key("verify"));
        }
        self.guard(&spec.guard, &at.key("guard"));
        self.rule(
            &at.key("guard").key("maxUnhealthy"),
            spec.guard.max_unhealthy.is_some()
                && !spec.target.is_selector()
                && spec.fleet.is_none(),
            rules::MAX_UNHEALTHY_NEEDS_SELECTOR,
        );
        let escalate = at.key("escalate");
        self.actions(&spec.escalate, &escalate);
        self.rule(
            &escalate,
            spec.escalate.iter().any(Action::is_config_edit),
            rules::ESCALATE_NO_EDITS,
        );
    }

    fn target(&mut self, target: &Target, at: &FieldPath) {
        let (kind, namespace, name, selector) = match target {
            Target::Unit(_) => return,
            Target::Haproxy(server) => return self.haproxy(server, &at.key("haproxy")),
            Target::Nginx(server) => {
                let at = at.key("nginx");
                // The journal names the target `nginx:UPSTREAM/SERVER@FILE`: a file with
                // `@/` in its path would read back as another target.
                self.rule(
                    &at.key("file"),
                    server.file.to_string_lossy().contains("@/"),
                    "an nginx target's file may not have `@/` in its path (the journal's name for the target ends the server there)",
                );
                return self.nginx_upstream(server, &at);
            }
            Target::Pods(s) | Target::Deployment(s) | Target::StatefulSet(s) => {
                (target.kind(), s.namespace.as_deref(), &s.name, &s.selector)
            }
            Target::Node(n) => (target.kind(), None, &n.name, &n.selector),
        };
        let at = at.key(kind);
        if let Some(ns) = namespace {
            self.check(&at.key("namespace"), rules::namespace(ns));
        }
        let what = match target {
            Target::Pods(_) => "pod",
            _ => kind,
        };
        if let Some(name) = name {
            self.check(&at.key("name"), rules::object_name(name, what));
        }
        for (key, value) in selector {
            self.check(&at.key("selector"), rules::label(key, value));
        }
        match (name, selector.is_empty()) {
            (Some(_), false) => self.rule(&at, true, rules::NAME_OR_SELECTOR),
            (None, true) => self.rule(
                &at,
                true,
                &format!("a {kind} target needs `name` (one object) or `selector` (labels)"),
            ),
            _ => {}
        }
    }

    /// A Kubernetes condition watches the kind of object it is about, and only that.
    fn conditions_fit_the_target(&mut self, spec: &PolicySpec, at: &FieldPath) {
        let kind = spec.target.kind();
        for (i, trigger) in spec.trigger.iter().enumerate() {
            let (watches, fits) = match &trigger.condition {
                Condition::Pod(_) => ("pods", matches!(spec.target, Target::Pods(_))),
                Condition::Workload(_) => (
                    "a deployment or statefulset",
                    matches!(spec.target, Target::Deployment(_) | Target::StatefulSet(_)),
                ),
                Condition::Node(_) => ("nodes", matches!(spec.target, Target::Node(_))),
                _ => continue,
            };
            let cond = trigger.condition.kind();
            self.rule(
                &at.key("trigger").index(i).key(cond),
                !fits,
                &format!(
                    "a {cond} condition watches {watches}, and this policy's target is {kind}"
                ),
            );
        }
    }

    /// What a policy on a Kubernetes target may hold: the Kubernetes API is how it is
    /// watched and acted on, so systemd, the host's files and its logs are out of reach.
    fn kubernetes_target(&mut self, spec: &PolicySpec, at: &FieldPath) {
        let kind = spec.target.kind();
        let (many, own) = match spec.target {
            Target::Deployment(_) => ("deployments", "workload"),
            Target::StatefulSet(_) => ("statefulsets", "workload"),
            Target::Node(_) => ("nodes", "node"),
            _ => ("pods", "pod"),
        };
        for (i, trigger) in spec.trigger.iter().enumerate() {
            let at = at.key("trigger").index(i);
            match &trigger.condition {
                Condition::Unit(_) => self.rule(
                    &at.key("unit"),
                    true,
                    &format!("a unit condition watches a systemd unit, and this policy's target is {kind}"),
                ),
                Condition::Log(_) => self.rule(
                    &at.key("log"),
                    true,
                    &format!("a log condition reads a file on the host, and this policy's target is {kind}"),
                ),
                // Each selected object has its own guard: one probe failing would act on
                // every one of them at once.
                Condition::Http(_) => self.rule(
                    &at.key("http"),
                    spec.target.is_selector(),
                    &format!("an http condition probes one URL, and this policy's target selects {many} by label: a failing probe would act on each of them; name one object, or watch each with a `{own}` condition"),
                ),
                Condition::PhpFpm(_) => self.rule(
                    &at.key("phpFpm"),
                    true,
                    &format!("a phpFpm condition reads a pool's status page from the host agent, and this policy's target is {kind}"),
                ),
                // Alertmanager's webhook reaches the host agent's receiver; the operator
                // has none yet, and a trigger that can never fire is refused, not kept.
                Condition::Alert(_) => self.rule(
                    &at.key("alert"),
                    true,
                    &format!("an alert condition is heard by the host agent's Alertmanager receiver, and this policy's target is {kind}: the operator has no receiver yet; watch {many} with a `{own}` condition"),
                ),
                _ => {}
            }
        }
        self.actions_fit(spec, at, rules::kubernetes_actions(&spec.target));
        if let Some(verify) = &spec.verify {
            self.rule(
                &at.key("verify").key("unit"),
                verify.unit.is_some(),
                &format!("`verify.unit` checks a systemd unit, and this policy's target is {kind}"),
            );
        }
    }

    /// Every action (and escalation) is one `fitting` the target's kind takes.
    fn actions_fit(&mut self, spec: &PolicySpec, at: &FieldPath, fitting: &[&str]) {
        let kind = spec.target.kind();
        for (list, actions) in [("actions", &spec.actions), ("escalate", &spec.escalate)] {
            for (i, action) in actions.iter().enumerate() {
                let name = action.name();
                self.rule(
                    &at.key(list).index(i).key(name),
                    !fitting.contains(&name),
                    &format!(
                        "`{name}` {}; a {kind} target takes: {}",
                        rules::what_acts_on(name),
                        fitting.join(", ")
                    ),
                );
            }
        }
    }

    /// A HAProxy server's policy probes it over HTTP and acts through the admin socket:
    /// no unit, log or Kubernetes object is its own.
    fn load_balancer_target(&mut self, spec: &PolicySpec, at: &FieldPath) {
        let server = match spec.target {
            Target::Nginx(_) => "an nginx upstream server",
            _ => "a HAProxy server",
        };
        let why = format!(
            "and this policy's target is {server}: probe the server with an `http` condition"
        );
        for (i, trigger) in spec.trigger.iter().enumerate() {
            let at = at.key("trigger").index(i);
            match &trigger.condition {
                Condition::Unit(_) => self.rule(
                    &at.key("unit"),
                    true,
                    &format!("a unit condition watches a systemd unit, {why}"),
                ),
                Condition::Log(_) => self.rule(
                    &at.key("log"),
                    true,
                    &format!("a log condition reads a file on the host, {why}"),
                ),
                _ => {}
            }
        }
        self.actions_fit(spec, at, rules::LOAD_BALANCER_ACTIONS);
        if let Some(verify) = &spec.verify {
            for (field, given) in [
                ("unit", verify.unit.is_some()),
                ("ready", verify.ready.is_some()),
            ] {
                self.rule(
                    &at.key("verify").key(field),
                    given,
                    &format!("`verify.{field}` checks what {server} is not; use `verify.http`"),
                );
            }
        }
    }

    /// A load-balancer action names its server, unless the policy's target is one.
    fn lb_servers_named(&mut self, spec: &PolicySpec, at: &FieldPath) {
        if spec.target.is_load_balancer() {
            // A weight the target's own nginx must take whole.
            if spec.target.nginx().is_some() {
                for (list, actions) in [("actions", &spec.actions), ("escalate", &spec.escalate)] {
                    for (i, action) in actions.iter().enumerate() {
                        if let Action::SetWeight(set) = action {
                            if set.haproxy.is_none() && set.nginx.is_none() {
                                self.check(
                                    &at.key(list).index(i).key("setWeight").key("weight"),
                                    rules::nginx_weight(set.weight),
                                );
                            }
                        }
                    }
                }
            }
            for (list, actions) in [("actions", &spec.actions), ("escalate", &spec.escalate)] {
                for (i, action) in actions.iter().enumerate() {
                    let gateway = match action {
                        Action::Drain(a) => a.gateway.is_some(),
                        Action::Ready(a) => a.gateway.is_some(),
                        Action::SetWeight(a) => a.gateway.is_some(),
                        _ => false,
                    };
                    self.rule(
                        &at.key(list).index(i).key(action.name()).key("gateway"),
                        gateway,
                        "`gateway` weighs an HTTPRoute through the API server: only the operator's policies (a pods, deployment or statefulset target) do",
                    );
                }
            }
            return;
        }
        for (list, actions) in [("actions", &spec.actions), ("escalate", &spec.escalate)] {
            for (i, action) in actions.iter().enumerate() {
                let (haproxy, nginx, gateway) = match action {
                    Action::Drain(a) => (&a.haproxy, &a.nginx, &a.gateway),
                    Action::Ready(a) => (&a.haproxy, &a.nginx, &a.gateway),
                    Action::SetWeight(a) => (&a.haproxy, &a.nginx, &a.gateway),
                    _ => continue,
                };
                let at = at.key(list).index(i).key(action.name());
                if spec.target.is_kubernetes() {
                    // The operator reaches a route through the API server, and no
                    // host's socket or nginx.
                    self.rule(
                        &at,
                        gateway.is_none(),
                        &format!(
                            "`{}` on a {} target needs `gateway` (route, service): the operator weighs an HTTPRoute's backends through the API server",
                            action.name(),
                            spec.target.kind()
                        ),
                    );
                    continue;
                }
                self.rule(
                    &at,
                    haproxy.is_none() && nginx.is_none(),
                    &format!(
                        "`{}` needs `haproxy` (socket, backend, server) or `nginx` (file, upstream, server), as this policy's target is not a load balancer's server",
                        action.name()
                    ),
                );
                self.rule(
                    &at.key("gateway"),
                    gateway.is_some(),
                    "`gateway` weighs an HTTPRoute through the API server: only the operator's policies (a pods, deployment or statefulset target) do",
                );
            }
        }
    }

    /// A unit's policy acts through systemd and the host: Kubernetes objects and their
    /// readiness are out of its reach.
    fn host_target(&mut self, spec: &PolicySpec, at: &FieldPath) {
        for (list, actions) in [("actions", &spec.actions), ("escalate", &spec.escalate)] {
            for (i, action) in actions.iter().enumerate() {
                let name = action.name();
                self.rule(
                    &at.key(list).index(i).key(name),
                    rules::KUBERNETES_ONLY_ACTIONS.contains(&name),
                    &format!(
                        "`{name}` {}, and this policy's target is a systemd unit",
                        rules::what_acts_on(name)
                    ),
                );
            }
        }
        if let Some(verify) = &spec.verify {
            self.rule(
                &at.key("verify").key("ready"),
                verify.ready.is_some(),
                "`verify.ready` checks a Kubernetes object, and this policy's target is a systemd unit; use `verify.unit`",
            );
        }
    }

    /// A condition read every `interval`, each read given `timeout`: both positive,
    /// and a read over before the next begins.
    fn polled(
        &mut self,
        at: &FieldPath,
        interval: std::time::Duration,
        timeout: std::time::Duration,
    ) {
        self.check(&at.key("interval"), rules::positive(interval));
        self.check(&at.key("timeout"), rules::positive(timeout));
        if timeout > interval {
            self.found.push(Violation {
                at: at.key("timeout"),
                or_at: Some(at.key("interval")),
                message: rules::exceeds(
                    "timeout",
                    ("timeout", timeout),
                    ("interval", interval),
                    rules::PROBES_OVERLAP,
                ),
            });
        }
    }

    fn trigger(&mut self, trigger: &Trigger, at: &FieldPath) {
        match &trigger.condition {
            Condition::Unit(unit) => {
                let at = at.key("unit");
                self.rule(
                    &at,
                    unit.active_state.is_empty()
                        && unit.sub_state.is_empty()
                        && unit.unit_file_state.is_empty(),
                    rules::UNIT_CONDITION_NEEDS_ONE,
                );
                let subs = at.key("subState");
                for (i, sub) in unit.sub_state.iter().enumerate() {
                    self.check(&subs.index(i), rules::not_blank(sub, "a sub state"));
                }
            }
            Condition::Http(http) => {
                let at = at.key("http");
                self.statuses(&http.status, &at.key("status"));
                let failures = u64::from(http.failures);
                self.check(
                    &at.key("failures"),
                    rules::whole(failures, rules::PROBE_FAILURES),
                );
                self.polled(&at, http.interval, http.timeout);
            }
            Condition::PhpFpm(fpm) => {
                let at = at.key("phpFpm");
                self.check(
                    &at.key("status"),
                    rules::fpm_status_address(&fpm.status).map(|_| ()),
                );
                self.check(&at.key("path"), rules::fpm_status_path(&fpm.path));
                if let Some(queue) = fpm.listen_queue {
                    self.check(
                        &at.key("listenQueue"),
                        rules::whole(u64::from(queue), rules::FPM_LISTEN_QUEUE),
                    );
                }
                if let Some(idle) = fpm.idle_at_most {
                    self.check(
                        &at.key("idleAtMost"),
                        rules::whole(u64::from(idle), rules::FPM_IDLE),
                    );
                }
                self.check(
                    &at.key("failures"),
                    rules::whole(u64::from(fpm.failures), rules::PROBE_FAILURES),
                );
                self.polled(&at, fpm.interval, fpm.timeout);
            }
            Condition::Alert(alert) => {
                let at = at.key("alert");
                self.check(&at.key("name"), rules::alert_name(&alert.name));
                let labels = at.key("labels");
                self.rule(
                    &labels,
                    alert.labels.len() > rules::ALERT_LABELS_MAX,
                    &format!(
                        "an alert condition names at most {} labels",
                        rules::ALERT_LABELS_MAX
                    ),
                );
                for (key, value) in &alert.labels {
                    self.check(&labels, rules::alert_label(key, value));
                }
            }
            Condition::Log(log) => {
                let at = at.key("log");
                self.check(&at.key("path"), rules::log_path(&path_text(&log.path)));
                let count = u64::from(log.count);
                self.check(&at.key("count"), rules::whole(count, rules::LOG_COUNT));
                self.check(&at.key("within"), rules::positive(log.within));
            }
            Condition::Pod(pod) => {
                let at = at.key("pod");
                self.rule(
                    &at,
                    pod.reason.is_empty() && pod.restarts.is_none() && pod.condition.is_none(),
                    rules::POD_CONDITION_NEEDS_ONE,
                );
                for (i, reason) in pod.reason.iter().enumerate() {
                    self.check(
                        &at.key("reason").index(i),
                        rules::not_blank(reason, "a reason"),
                    );
                }
                if let Some(restarts) = pod.restarts {
                    self.check(
                        &at.key("restarts"),
                        rules::whole(u64::from(restarts), rules::POD_RESTARTS),
                    );
                }
                self.object_condition(pod.condition.as_deref(), &pod.status, &at);
            }
            Condition::Workload(workload) => {
                let at = at.key("workload");
                if let Some(unavailable) = workload.unavailable {
                    self.check(
                        &at.key("unavailable"),
                        rules::whole(u64::from(unavailable), rules::UNAVAILABLE_REPLICAS),
                    );
                }
                self.object_condition(workload.condition.as_deref(), &workload.status, &at);
            }
            Condition::Node(node) => {
                self.check(
                    &at.key("node").key("condition"),
                    rules::condition_type(&node.condition),
                );
            }
        }
    }

    /// A pod's or workload's optional `condition` and the `status` values that count.
    fn object_condition(
        &mut self,
        condition: Option<&str>,
        status: &[ConditionValue],
        at: &FieldPath,
    ) {
        match condition {
            Some(condition) => self.check(&at.key("condition"), rules::condition_type(condition)),
            None => self.rule(
                &at.key("status"),
                !status.is_empty(),
                rules::STATUS_NEEDS_CONDITION,
            ),
        }
    }

    fn statuses(&mut self, statuses: &[u16], at: &FieldPath) {
        for (i, &status) in statuses.iter().enumerate() {
            self.check(
                &at.index(i),
                rules::whole(u64::from(status), rules::HTTP_STATUS),
            );
        }
    }

    fn haproxy(&mut self, server: &crate::policy::HaproxyServer, at: &FieldPath) {
        self.path(&server.socket, &at.key("socket"));
        use crate::policy::load_balancer::haproxy_name;
        self.check(&at.key("backend"), haproxy_name(&server.backend, "backend"));
        self.check(&at.key("server"), haproxy_name(&server.server, "server"));
        self.rule(
            &at.key("level"),
            !server.level.is_admin(),
            &rules::haproxy_level(server.level),
        );
    }

    fn nginx_upstream(&mut self, server: &crate::policy::NginxUpstreamServer, at: &FieldPath) {
        use crate::policy::load_balancer::{plain_name, upstream_address};
        self.path(&server.file, &at.key("file"));
        self.path(&server.config, &at.key("config"));
        self.check(
            &at.key("upstream"),
            plain_name(&server.upstream, "nginx upstream"),
        );
        self.check(&at.key("server"), upstream_address(&server.server));
    }

    /// The server an action names: at most one kind, each checked.
    fn lb_server(
        &mut self,
        haproxy: &Option<crate::policy::HaproxyServer>,
        nginx: &Option<crate::policy::NginxUpstreamServer>,
        gateway: &Option<crate::policy::GatewayBackend>,
        at: &FieldPath,
    ) {
        if let Some(server) = haproxy {
            self.haproxy(server, &at.key("haproxy"));
        }
        if let Some(server) = nginx {
            self.nginx_upstream(server, &at.key("nginx"));
        }
        if let Some(backend) = gateway {
            let at = at.key("gateway");
            if let Some(ns) = &backend.namespace {
                self.check(&at.key("namespace"), rules::namespace(ns));
            }
            self.check(
                &at.key("route"),
                rules::object_name(&backend.route, "HTTPRoute"),
            );
            self.check(
                &at.key("service"),
                rules::object_name(&backend.service, "Service"),
            );
            if let Some(port) = backend.port {
                self.check(&at.key("port"), rules::whole(u64::from(port), rules::PORT));
            }
        }
        let named = [haproxy.is_some(), nginx.is_some(), gateway.is_some()];
        self.rule(
            at,
            named.iter().filter(|n| **n).count() > 1,
            "name one server: `haproxy`, `nginx` or `gateway`, not two",
        );
    }

    fn actions(&mut self, actions: &[Action], at: &FieldPath) {
        for (i, action) in actions.iter().enumerate() {
            self.action(action, &at.index(i).key(action.name()));
        }
    }

    fn action(&mut self, action: &Action, at: &FieldPath) {
        match action {
            Action::Start(_)
            | Action::Stop(_)
            | Action::Restart(_)
            | Action::TryRestart(_)
            | Action::Reload(_)
            | Action::ResetFailed(_)
            | Action::Enable(_)
            | Action::Disable(_)
            | Action::Kill(_)
            | Action::DeletePod(_)
            | Action::RolloutRestart(_)
            | Action::Cordon(_) => {}
            Action::Scale(scale) => {
                self.check(
                    &at.key("by"),
                    rules::whole(u64::from(scale.by), rules::SCALE_STEP),
                );
                self.check(
                    &at.key("min"),
                    rules::whole(u64::from(scale.min), rules::REPLICAS),
                );
                self.check(
                    &at.key("max"),
                    rules::whole(u64::from(scale.max), rules::REPLICAS),
                );
                self.rule(
                    &at.key("max"),
                    scale.max < scale.min,
                    &format!("max {} is below min {}", scale.max, scale.min),
                );
            }
            Action::RaiseMemoryLimit(raise) => {
                self.check(
                    &at.key("container"),
                    rules::object_name(&raise.container, "container"),
                );
                self.factor(raise.factor, at);
            }
            Action::Notify(notify) => {
                self.check(&at.key("timeout"), rules::positive(notify.timeout));
                let path = notify.webhook.path.split('?').next().unwrap_or_default();
                self.rule(
                    &at.key("webhook"),
                    notify.format == NotifyFormat::Alertmanager
                        && !path.trim_end_matches('/').ends_with("/api/v2/alerts"),
                    &format!(
                        "the alertmanager format posts to Alertmanager's alerts API: the webhook is http://ALERTMANAGER:9093/api/v2/alerts, not {}",
                        notify.webhook
                    ),
                );
            }
            Action::Drain(drain) => {
                self.lb_server(&drain.haproxy, &drain.nginx, &drain.gateway, at);
                if let Some(ramp) = &drain.ramp {
                    let at = at.key("ramp");
                    self.check(
                        &at.key("steps"),
                        rules::whole(u64::from(ramp.steps), rules::RAMP_STEPS),
                    );
                    self.check(&at.key("interval"), rules::positive(ramp.interval));
                }
            }
            Action::Ready(lb) => self.lb_server(&lb.haproxy, &lb.nginx, &lb.gateway, at),
            Action::SetWeight(set) => {
                self.lb_server(&set.haproxy, &set.nginx, &set.gateway, at);
                if set.nginx.is_some() {
                    self.check(&at.key("weight"), rules::nginx_weight(set.weight));
                }
                if set.gateway.is_some() {
                    self.check(&at.key("weight"), rules::gateway_weight(set.weight));
                }
            }
            Action::Exec(exec) => {
                let command = at.key("command");
                match exec.command.first() {
                    None => self.rule(&command, true, &empty("command argument")),
                    Some(program) => self.check(&command, rules::exec_program(program)),
                }
                self.check(&at.key("timeout"), rules::positive(exec.timeout));
            }
            Action::NginxEdit(edit) => {
                self.path(&edit.file, &at.key("file"));
                self.nginx_directives(&edit.context, &edit.raise, &edit.set, at);
                self.path(&edit.config, &at.key("config"));
            }
            Action::ConfigMapEdit(edit) => {
                self.check(
                    &at.key("configMap"),
                    rules::object_name(&edit.config_map, "ConfigMap"),
                );
                self.check(&at.key("key"), rules::config_map_key(&edit.key));
                self.nginx_directives(&edit.context, &edit.raise, &edit.set, at);
            }
            Action::PhpFpmEdit(edit) => {
                self.path(&edit.file, &at.key("file"));
                self.check(&at.key("pool"), rules::pool_name(&edit.pool));
                for (i, raise) in edit.raise.iter().enumerate() {
                    let at = at.key("raise").index(i);
                    self.check(&at.key("key"), rules::raisable_pool_key(&raise.key));
                    self.factor(raise.factor, &at);
                    self.check(&at.key("max"), rules::whole(raise.max, rules::POOL_KEY_MAX));
                }
                for (i, set) in edit.set.iter().enumerate() {
                    let at = at.key("set").index(i);
                    self.check(&at.key("key"), rules::settable_pool_key(&set.key));
                    self.check(
                        &at.key("value"),
                        rules::config_value(&set.value, rules::FPM_VALUE_FORBIDDEN),
                    );
                }
                self.path(&edit.config, &at.key("config"));
                self.rule(
                    at,
                    edit.raise.is_empty() && edit.set.is_empty(),
                    rules::EDIT_NEEDS_CHANGE,
                );
            }
            Action::AlignFastcgiPass(align) => {
                self.path(&align.file, &at.key("file"));
                self.check(&at.key("pool"), rules::pool_name(&align.pool));
                self.path(&align.fpm_config, &at.key("fpmConfig"));
                self.path(&align.config, &at.key("config"));
            }
        }
    }

    /// What an nginx edit changes, in a file or a ConfigMap's key.
    fn nginx_directives(
        &mut self,
        context: &str,
        raise: &[RaiseDirective],
        set: &[SetDirective],
        at: &FieldPath,
    ) {
        self.check(&at.key("context"), rules::not_blank(context, "context"));
        for (i, raise) in raise.iter().enumerate() {
            self.factor(raise.factor, &at.key("raise").index(i));
        }
        for (i, set) in set.iter().enumerate() {
            let at = at.key("set").index(i);
            self.check(
                &at.key("directive"),
                rules::settable_directive(&set.directive),
            );
            self.check(
                &at.key("value"),
                rules::config_value(&set.value, rules::NGINX_VALUE_FORBIDDEN),
            );
        }
        self.rule(
            at,
            raise.is_empty() && set.is_empty(),
            rules::EDIT_NEEDS_CHANGE,
        );
    }

    fn factor(&mut self, factor: f64, at: &FieldPath) {
        self.check(&at.key("factor"), rules::real(factor, rules::RAISE_FACTOR));
    }

    fn path(&mut self, path: &std::path::Path, at: &FieldPath) {
        self.check(at, rules::absolute_path(&path_text(path)));
    }

    fn verify(&mut self, verify: &Verify, at: &FieldPath) {
        self.rule(
            at,
            verify.http.is_none() && verify.unit.is_none() && verify.ready.is_none(),
            rules::VERIFY_NEEDS_ONE,
        );
        if let Some(ready) = &verify.ready {
            self.check(
                &at.key("ready").key("within"),
                rules::positive(ready.within),
            );
        }
        if let Some(http) = &verify.http {
            let at = at.key("http");
            self.statuses(&http.status, &at.key("status"));
            self.check(&at.key("within"), rules::positive(http.within));
        }
        if let Some(unit) = &verify.unit {
            self.check(&at.key("unit").key("within"), rules::positive(unit.within));
        }
    }

    fn guard(&mut self, guard: &Guard, at: &FieldPath) {
        let attempts = u64::from(guard.max_attempts);
        self.check(
            &at.key("maxAttempts"),
            rules::whole(attempts, rules::MAX_ATTEMPTS),
        );
        self.check(&at.key("window"), rules::positive(guard.window));
        self.check(
            &at.key("backoff"),
            rules::real(guard.backoff, rules::BACKOFF),
        );
        if guard.cooldown > guard.window {
            self.found.push(Violation {
                at: at.key("cooldown"),
                or_at: Some(at.key("window")),
                message: rules::exceeds(
                    "guard",
                    ("cooldown", guard.cooldown),
                    ("window", guard.window),
                    "",
                ),
            });
        }
    }
}

fn path_text(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}
