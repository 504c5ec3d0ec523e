//! The fleet guard: at most `limit` members of a group (the nodes behind one load
//! balancer, say) drained or remediated at once, across every agent, held in etcd.
//!
//! A member takes a slot by creating its key under the group's prefix with a lease of
//! its own, then reading the prefix: the `limit` keys created first (lowest create
//! revision) hold the slots. Two agents racing see the same order, so exactly as many
//! as there are slots hold one. The lease is renewed while the slot is held; an agent
//! that dies (SIGKILL) stops renewing, and its key goes when the lease's TTL runs out,
//! freeing the slot. Before each change it makes, a holder checks that its key is still
//! there with the revision it created (the fencing check): an agent that was stopped
//! past its TTL and then continued finds it gone and does nothing.
//!
//! A group whose every member is one agent (`lock: local`: the agent on the load
//! balancer's host, one policy per server) keeps the same keys in the agent's memory:
//! the same order, the same fencing, no store to lose, nothing to renew.

pub mod etcd;

use etcd::{Etcd, EtcdError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where every group's keys live.
const PREFIX: &str = "/salve/fleet/";

pub struct FleetLock {
    store: Store,
    ttl: Duration,
}

enum Store {
    Etcd(Etcd),
    /// Each key held, with the revision it was created at.
    Local(std::sync::Mutex<LocalKeys>),
}

#[derive(Default)]
struct LocalKeys {
    keys: std::collections::BTreeMap<String, etcd::KeyValue>,
    revision: i64,
}

/// A slot held: the key, its lease, and the renewal running in the background.
pub struct Slot {
    pub key: String,
    /// 0 for a slot held in the agent (there is no lease).
    pub lease: i64,
    pub create_revision: i64,
    /// Set when a renewal found the lease gone.
    lost: Arc<AtomicBool>,
    renewing: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.stop_renewing();
    }
}

impl Slot {
    /// Whether a renewal found the lease expired.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Stops renewing, as a killed agent does: the slot frees itself after the TTL.
    pub fn stop_renewing(&self) {
        if let Some(renewing) = &self.renewing {
            renewing.abort();
        }
    }
}

/// What asking for a slot found.
pub enum Acquired {
    Held(Slot),
    /// Every slot is taken: the members holding them, oldest first.
    Full {
        holders: Vec<String>,
    },
}

impl FleetLock {
    /// `ttl`: how long a slot outlives its holder's last renewal (whole seconds).
    pub fn new(etcd: Etcd, ttl: Duration) -> Self {
        FleetLock {
            store: Store::Etcd(etcd),
            ttl,
        }
    }

    /// Slots held in this agent alone.
    pub fn local() -> Self {
        FleetLock {
            store: Store::Local(Default::default()),
            ttl: Duration::ZERO,
        }
    }

    pub(crate) fn group_prefix(group: &str) -> String {
        format!("{PREFIX}{group}/")
    }

    /// The key of `member`'s slot (for `target`, one of its servers) in `group`.
    pub fn slot_key(group: &str, member: &str, target: Option<&str>) -> String {
        let prefix = Self::group_prefix(group);
        match target {
            Some(target) => format!("{prefix}{member}/{target}"),
            None => format!("{prefix}{member}"),
        }
    }

    /// Takes one of the group's `limit` slots for `member`, if one is free.
    pub async fn acquire(
        &self,
        group: &str,
        member: &str,
        limit: u32,
    ) -> Result<Acquired, EtcdError> {
        self.acquire_for(group, member, None, limit).await
    }

    /// `acquire`, for one of the member's targets: an agent on the load balancer's host
    /// drains several servers of the group, each under a slot (a key) of its own.
    pub async fn acquire_for(
        &self,
        group: &str,
        member: &str,
        target: Option<&str>,
        limit: u32,
    ) -> Result<Acquired, EtcdError> {
        let prefix = Self::group_prefix(group);
        let key = Self::slot_key(group, member, target);
        let taken = |holders: Vec<etcd::KeyValue>| {
            let mut holders = holders;
            holders.sort_by_key(|kv| kv.create_revision);
            holders
                .into_iter()
                .take(limit as usize)
                .map(|kv| kv.value)
                .collect::<Vec<_>>()
        };
        let etcd = match &self.store {
            Store::Etcd(etcd) => etcd,
            Store::Local(keys) => {
                let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                return Ok(keys.acquire(&prefix, key, target.unwrap_or(member), limit, taken));
            }
        };
        let lease = etcd.grant(self.ttl).await?;
        if !etcd.create(&key, member, lease).await? {
            // The member holds a slot already: another of its attempts, or an earlier
            // life of this agent whose lease has not run out yet.
            let _ = etcd.revoke(lease).await;
            return Ok(Acquired::Full {
                holders: taken(etcd.range(&prefix).await?),
            });
        }
        let mut keys = etcd.range(&prefix).await?;
        keys.sort_by_key(|kv| kv.create_revision);
        let rank = keys.iter().position(|kv| kv.key == key);
        let create_revision = rank.map_or(0, |i| keys[i].create_revision);
        match rank {
            Some(rank) if rank < limit as usize => {
                let lost = Arc::new(AtomicBool::new(false));
                let renewing =
                    tokio::spawn(renew(etcd.clone(), lease, self.ttl, Arc::clone(&lost)));
                Ok(Acquired::Held(Slot {
                    key,
                    lease,
                    create_revision,
                    lost,
                    renewing: Some(renewing),
                }))
            }
            _ => {
                // Revoking the lease deletes the key with it.
                etcd.revoke(lease).await?;
                Ok(Acquired::Full {
                    holders: taken(keys),
                })
            }
        }
    }

    /// The fencing check: the slot's key is still there, created by this holder, under
    /// its lease. False once the lease ran out, even if someone else took the slot.
    pub async fn still_held(&self, slot: &Slot) -> Result<bool, EtcdError> {
        if slot.lost() {
            return Ok(false);
        }
        let etcd = match &self.store {
            Store::Etcd(etcd) => etcd,
            Store::Local(keys) => {
                let keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                return Ok(keys
                    .keys
                    .get(&slot.key)
                    .is_some_and(|kv| kv.create_revision == slot.create_revision));
            }
        };
        let keys = etcd.range(&slot.key).await?;
        Ok(keys.iter().any(|kv| {
            kv.key == slot.key
                && kv.create_revision == slot.create_revision
                && kv.lease == slot.lease
        }))
    }

    /// Gives the slot back at once.
    pub async fn release(&self, slot: Slot) -> Result<(), EtcdError> {
        slot.stop_renewing();
        match &self.store {
            Store::Etcd(etcd) => etcd.revoke(slot.lease).await,
            Store::Local(keys) => {
                let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                if keys
                    .keys
                    .get(&slot.key)
                    .is_some_and(|kv| kv.create_revision == slot.create_revision)
                {
                    keys.keys.remove(&slot.key);
                }
                Ok(())
            }
        }
    }
}

impl LocalKeys {
    /// `acquire_for` in memory: the key is made, then ranked among the group's.
    fn acquire(
        &mut self,
        prefix: &str,
        key: String,
        holder: &str,
        limit: u32,
        taken: impl Fn(Vec<etcd::KeyValue>) -> Vec<String>,
    ) -> Acquired {
        let group = |keys: &std::collections::BTreeMap<String, etcd::KeyValue>| {
            keys.range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, kv)| kv.clone())
                .collect::<Vec<_>>()
        };
        let holders = group(&self.keys);
        if self.keys.contains_key(&key) || holders.len() >= limit as usize {
            return Acquired::Full {
                holders: taken(holders),
            };
        }
        self.revision += 1;
        let kv = etcd::KeyValue {
            key: key.clone(),
            value: holder.to_string(),
            create_revision: self.revision,
            lease: 0,
        };
        self.keys.insert(key.clone(), kv);
        Acquired::Held(Slot {
            key,
            lease: 0,
            create_revision: self.revision,
            lost: Arc::new(AtomicBool::new(false)),
            renewing: None,
        })
    }
}

/// Renews the lease three times per TTL, until it is found gone.
async fn renew(etcd: Etcd, lease: i64, ttl: Duration, lost: Arc<AtomicBool>) {
    let every = (ttl / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        match etcd.keep_alive(lease).await {
            Ok(0) => {
                tracing::warn!(lease, "the fleet slot's lease expired");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
            // One missed renewal is not the end: the lease lives on for its TTL, and the
            // fencing check says when it is gone.
            Err(e) => tracing::warn!(lease, error = %e, "could not renew the fleet slot's lease"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
