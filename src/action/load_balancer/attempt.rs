//! The load-balancer side of an attempt: a drain takes a fleet slot first (or is not
//! made, and says why), a weight of 0 likewise; the ramp back runs after the attempt
//! verified, one step at a time, each step only while the slot is still held; a drain
//! that cannot be made is escalated once, and never stops the heal.

use crate::action::{load_balancer, EditTrail, Executor, Failure, Family};
use crate::policy::{Action, LbServer, Policy};

/// Why a drain was not made, and whether a person must hear of it (a full group is
/// the fleet guard doing its job; etcd out of reach or a lost slot is not).
#[derive(Clone)]
pub(in crate::action) struct NotDrained {
    why: String,
    escalate: bool,
}

/// A policy's instance: each pod of a selector has its own drains and troubles.
fn trouble_key(policy: &Policy) -> String {
    format!("{}\n{}", policy.name(), crate::engine::target_name(policy))
}

fn lost_slot(group: &str) -> String {
    format!(
        "fleet {group}: this agent lost its slot (its lease ran out while it was stopped or cut off); it must not act on the load balancer"
    )
}

/// The fencing check, in words: `Err` says why this agent may not act under `slot`.
async fn still_held(
    lock: &crate::fleet::FleetLock,
    slot: &crate::fleet::Slot,
    group: &str,
) -> Result<(), String> {
    match lock.still_held(slot).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(lost_slot(group)),
        Err(e) => Err(format!(
            "fleet {group}: cannot check this agent's slot: {e}"
        )),
    }
}

impl<F: Family> Executor<F> {
    /// Whether the attempt may drain now: it holds a fleet slot and still does (the
    /// fencing check), or took one just now. `Err` says why not.
    pub(in crate::action) async fn fleet_slot(
        &self,
        guard: &crate::policy::FleetGuard,
        server: LbServer<'_>,
        trail: &mut EditTrail,
    ) -> Result<(), NotDrained> {
        use crate::fleet::Acquired;
        if let Some(refused) = &trail.fleet_refused {
            return Err(refused.clone());
        }
        let Some((lock, member)) = self.fleet_lock(guard.lock) else {
            return Err(NotDrained {
                why: format!(
                    "fleet {}: the policy's slots are held in etcd, and the agent config names none (`fleet.etcd`)",
                    guard.group
                ),
                escalate: true,
            });
        };
        let trouble = |why: String| NotDrained {
            why,
            escalate: true,
        };
        if trail.fleet_slot.is_none() {
            // A server an earlier attempt left drained still holds its slot, and is
            // still drained whatever this attempt does: the slot stays with it.
            let key =
                crate::fleet::FleetLock::slot_key(&guard.group, member, Some(&server.to_string()));
            trail.fleet_slot = self.kept_slot(&key);
            trail.left_drained = trail.fleet_slot.is_some();
        }
        let refused = match &trail.fleet_slot {
            Some((slot, _, _)) => match still_held(lock, slot, &guard.group).await {
                Ok(()) => return Ok(()),
                Err(why) => trouble(why),
            },
            None => match self.fleet_slots(guard, server).await {
                Err(why) => trouble(why),
                Ok(slots) => match self.acquire(lock, guard, member, server, slots).await {
                    Ok(Acquired::Held(slot)) => {
                        let drained = load_balancer::DrainedServer::of(server, Default::default());
                        trail.fleet_slot = Some((slot, guard.lock, Some(drained)));
                        return Ok(());
                    }
                    Ok(Acquired::Full { holders }) => NotDrained {
                        why: format!(
                            "fleet {}: all {slots} slot(s){} are taken, by {}",
                            guard.group,
                            match guard.max_concurrent {
                                crate::policy::FleetSlots::Percent(p) => {
                                    format!(" ({p}% of the servers)")
                                }
                                crate::policy::FleetSlots::Count(_) => String::new(),
                            },
                            holders.join(", ")
                        ),
                        escalate: false,
                    },
                    Err(e) => trouble(format!("fleet {}: {e}", guard.group)),
                },
            },
        };
        trail.fleet_refused = Some(refused.clone());
        Err(refused)
    }

    /// Asks for a slot; with the group full, first gives back the slots this agent
    /// kept for servers that serve again, and asks once more.
    async fn acquire(
        &self,
        lock: &crate::fleet::FleetLock,
        guard: &crate::policy::FleetGuard,
        member: &str,
        server: LbServer<'_>,
        slots: u32,
    ) -> Result<crate::fleet::Acquired, crate::fleet::etcd::EtcdError> {
        let target = server.to_string();
        let first = lock
            .acquire_for(&guard.group, member, Some(&target), slots)
            .await?;
        match first {
            crate::fleet::Acquired::Full { .. } if self.reclaim_kept_slots(&guard.group).await => {
                lock.acquire_for(&guard.group, member, Some(&target), slots)
                    .await
            }
            answer => Ok(answer),
        }
    }

    /// The group's slots: its number, or its share of the servers behind the load
    /// balancer `server` is in, counted now.
    async fn fleet_slots(
        &self,
        guard: &crate::policy::FleetGuard,
        server: LbServer<'_>,
    ) -> Result<u32, String> {
        match guard.max_concurrent {
            crate::policy::FleetSlots::Count(n) => Ok(n),
            share => load_balancer::servers_behind(server)
                .await
                .map(|servers| share.of(servers))
                .map_err(|f| {
                    format!(
                        "fleet {}: cannot count the servers for {share}: {}",
                        guard.group, f.message
                    )
                }),
        }
    }

    /// Notes a drain that could not be made: escalated the first time since the
    /// policy's last good drain.
    fn drain_trouble(&self, policy: &Policy, why: &str, trail: &mut EditTrail) {
        // An escalation's own drain is not news of its own: it is the escalation.
        if trail.escalating.is_some() {
            return;
        }
        let mut trouble = self.drain_trouble.lock().unwrap_or_else(|e| e.into_inner());
        if trouble.insert(trouble_key(policy)) {
            trail.escalate.get_or_insert_with(|| why.to_string());
        }
    }

    fn drain_made(&self, policy: &Policy) {
        let mut trouble = self.drain_trouble.lock().unwrap_or_else(|e| e.into_inner());
        trouble.remove(&trouble_key(policy));
    }

    /// Whether the attempt may still act on the load balancer for its ramp: it holds
    /// the fleet slot it drained under (or drained under none).
    async fn still_holds_slot(&self, policy: &Policy, trail: &EditTrail) -> Result<(), String> {
        let (Some((slot, kind, _)), Some(guard)) = (&trail.fleet_slot, &policy.spec.fleet) else {
            return Ok(());
        };
        let Some((lock, _)) = self.fleet_lock(*kind) else {
            return Ok(());
        };
        still_held(lock, slot, &guard.group).await
    }

    /// Gives each server the attempt drained its weight back, if the attempt verified;
    /// the steps' lines go to `steps`. The first ramp step HAProxy, nginx or the API
    /// server refused, if any.
    pub(in crate::action) async fn ramp_back(
        &self,
        policy: &Policy,
        verified: Option<bool>,
        trail: &mut EditTrail,
        steps: &mut Vec<String>,
    ) -> Option<String> {
        let mut failed = None;
        let ramps = std::mem::take(&mut trail.ramps);
        // Whether every server drained got all its weight back.
        let mut all_back = !ramps.is_empty();
        // Weight goes back only to a server whose attempt verified; one that did not
        // stays drained, and its policy's guard counts the failure. Nor does an agent
        // that lost its fleet slot meanwhile touch the load balancer again: the slot
        // is checked before every step.
        for (server, ramp, weight) in ramps {
            if verified != Some(true) {
                steps.push(format!(
                    "ramp: not run: {} stays drained, as the attempt did not verify",
                    server.as_ref()
                ));
                all_back = false;
                continue;
            }
            let weights = load_balancer::ramp_weights(weight, ramp.steps);
            for (i, &w) in weights.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(ramp.interval).await;
                }
                if let Err(why) = self.still_holds_slot(policy, trail).await {
                    tracing::warn!(reason = %why, "ramp stopped");
                    steps.push(if i == 0 {
                        format!("ramp: not run: {why}; {} stays drained", server.as_ref())
                    } else {
                        format!(
                            "ramp: stopped after step {i} of {}: {why}; {} keeps its weight {}",
                            weights.len(),
                            server.as_ref(),
                            weights[i - 1]
                        )
                    });
                    self.drain_trouble(policy, &why, trail);
                    all_back = false;
                    break;
                }
                let n = weights.len();
                let step = match &server {
                    load_balancer::DrainedServer::Haproxy(s) => {
                        load_balancer::ramp_step(s, i, n, w).await
                    }
                    load_balancer::DrainedServer::Nginx(s) => {
                        load_balancer::nginx::ramp_step(&self.family, s, i, n, w, &mut trail.diffs)
                            .await
                    }
                    load_balancer::DrainedServer::Gateway(g, had) => {
                        let back = load_balancer::RouteWeight::Back {
                            had: had.0.clone(),
                            step: i as u32 + 1,
                            of: n as u32,
                        };
                        self.family
                            .weigh_route(policy, g, back)
                            .await
                            .map(|(line, _)| format!("step {} of {n}: {line}", i + 1))
                    }
                };
                match step {
                    Ok(line) => steps.push(format!("ramp: {line}")),
                    Err(failure) => {
                        steps.push(format!("ramp: {}", failure.message));
                        tracing::warn!(error = %failure.message, "the ramp back failed");
                        failed.get_or_insert(failure.message);
                        all_back = false;
                        break;
                    }
                }
            }
        }
        if all_back {
            trail.left_drained = false;
        }
        failed
    }

    /// A server under a fleet guard serves again (readied, or given a weight): the
    /// slot it held while drained, this attempt's or an earlier one's, is no longer
    /// taken.
    async fn serving_again(&self, policy: &Policy, server: LbServer<'_>, trail: &mut EditTrail) {
        let Some(guard) = &policy.spec.fleet else {
            return;
        };
        let Some((_, member)) = self.fleet_lock(guard.lock) else {
            return;
        };
        let key =
            crate::fleet::FleetLock::slot_key(&guard.group, member, Some(&server.to_string()));
        // Only the server the attempt's own slot is for stops holding it.
        if trail
            .fleet_slot
            .as_ref()
            .is_some_and(|(slot, _, _)| slot.key == key)
        {
            trail.left_drained = false;
        }
        if let Some((slot, kind, _)) = self.kept_slot(&key) {
            self.release_slot(slot, kind).await;
        }
    }

    /// `drain`, `ready` and `setWeight`, on whichever server the action names.
    pub(in crate::action) async fn shift(
        &self,
        policy: &Policy,
        action: &Action,
        trail: &mut EditTrail,
    ) -> Result<String, Failure> {
        match action {
            Action::Drain(args) => {
                let server =
                    load_balancer::server_of(&args.haproxy, &args.nginx, &args.gateway, policy)?;
                // Without a slot nothing is drained, and the rest of the attempt (a
                // restart of what is down here takes no capacity) still runs.
                if let Some(guard) = &policy.spec.fleet {
                    if let Err(refused) = self.fleet_slot(guard, server, trail).await {
                        tracing::warn!(reason = %refused.why, "not drained");
                        if refused.escalate {
                            self.drain_trouble(policy, &refused.why, trail);
                        }
                        return Ok(format!(
                            "not drained: {}; the rest of the attempt goes on",
                            refused.why
                        ));
                    }
                }
                // A drain the load balancer refuses (or nginx -t) must not keep the
                // node from being healed: the rest of the attempt goes on, and a
                // person hears of it once.
                let mut route_had = load_balancer::RouteWeights::default();
                let drained = match server {
                    LbServer::Haproxy(s) => load_balancer::drain(s)
                        .await
                        .map(|drained| (drained.line, drained.weight)),
                    LbServer::Nginx(s) => {
                        load_balancer::nginx::drain(&self.family, s, &mut trail.diffs).await
                    }
                    LbServer::Gateway(g) => self
                        .family
                        .weigh_route(policy, g, load_balancer::RouteWeight::Drain)
                        .await
                        .map(|(line, had)| {
                            let largest = had.largest();
                            route_had = had;
                            (format!("drained {line}"), largest)
                        }),
                };
                let (line, weight) = match drained {
                    Ok(done) => done,
                    Err(failure) => {
                        tracing::warn!(reason = %failure.message, "not drained");
                        let why = format!("{server}: {}", failure.message);
                        self.drain_trouble(policy, &why, trail);
                        return Ok(format!(
                            "not drained: {}; the rest of the attempt goes on",
                            failure.message
                        ));
                    }
                };
                self.drain_made(policy);
                trail.left_drained |= trail.fleet_slot.is_some();
                // A server already at weight 0 (an earlier drain that never ramped,
                // a person) has no weight salve knows to give back.
                if let (Some(_), 0) = (&args.ramp, weight) {
                    return Ok(format!(
                        "{line}; no ramp: its weight before is not known, give it back with setWeight"
                    ));
                }
                if let Some(ramp) = &args.ramp {
                    trail.ramps.push((
                        load_balancer::DrainedServer::of(server, route_had),
                        ramp.clone(),
                        weight,
                    ));
                }
                Ok(line)
            }
            Action::Ready(args) => {
                let server =
                    load_balancer::server_of(&args.haproxy, &args.nginx, &args.gateway, policy)?;
                let readied = match server {
                    LbServer::Haproxy(s) => load_balancer::ready(s).await,
                    LbServer::Nginx(s) => {
                        load_balancer::nginx::weigh(&self.family, s, None, &mut trail.diffs).await
                    }
                    LbServer::Gateway(g) => self
                        .family
                        .weigh_route(policy, g, load_balancer::RouteWeight::Ready)
                        .await
                        .map(|(line, _)| format!("readied {line}")),
                }?;
                self.serving_again(policy, server, trail).await;
                Ok(readied)
            }
            Action::SetWeight(args) => {
                let server =
                    load_balancer::server_of(&args.haproxy, &args.nginx, &args.gateway, policy)?;
                // A zero weight is a drain by another name: under a fleet guard it
                // takes a slot first. Any other weight leaves the server serving (and
                // giving weight back must never wait for a slot).
                let zero = matches!(
                    args.weight,
                    crate::policy::LbWeight::Absolute(0) | crate::policy::LbWeight::Percent(0)
                );
                if let (Some(guard), true) = (&policy.spec.fleet, zero) {
                    if let Err(refused) = self.fleet_slot(guard, server, trail).await {
                        tracing::warn!(reason = %refused.why, "weight not set");
                        if refused.escalate {
                            self.drain_trouble(policy, &refused.why, trail);
                        }
                        return Ok(format!(
                            "weight not set: {}; the rest of the attempt goes on",
                            refused.why
                        ));
                    }
                }
                let absolute = || match args.weight {
                    crate::policy::LbWeight::Absolute(w) => Ok(w),
                    // Validation keeps nginx and Gateway API weights absolute.
                    crate::policy::LbWeight::Percent(_) => Err(Failure::failed(format!(
                        "{server} takes a whole weight, not {}",
                        args.weight
                    ))),
                };
                let set = match server {
                    LbServer::Haproxy(s) => load_balancer::set_weight(s, args.weight).await,
                    LbServer::Nginx(s) => {
                        load_balancer::nginx::weigh(
                            &self.family,
                            s,
                            Some(absolute()?),
                            &mut trail.diffs,
                        )
                        .await
                    }
                    LbServer::Gateway(g) => self
                        .family
                        .weigh_route(policy, g, load_balancer::RouteWeight::To(absolute()?))
                        .await
                        .map(|(line, _)| format!("set the weight of {line}")),
                }?;
                if zero {
                    trail.left_drained |= trail.fleet_slot.is_some();
                } else {
                    self.serving_again(policy, server, trail).await;
                }
                Ok(set)
            }
            other => Err(Failure::failed(format!(
                "`{}` is not a load-balancer action",
                other.name()
            ))),
        }
    }
}
