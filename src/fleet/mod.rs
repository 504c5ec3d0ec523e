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

pub mod etcd;

use etcd::{Etcd, EtcdError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where every group's keys live.
const PREFIX: &str = "/salve/fleet/";

pub struct FleetLock {
    etcd: Etcd,
    ttl: Duration,
}

/// A slot held: the key, its lease, and the renewal running in the background.
pub struct Slot {
    pub key: String,
    pub lease: i64,
    pub create_revision: i64,
    /// Set when a renewal found the lease gone.
    lost: Arc<AtomicBool>,
    renewing: tokio::task::JoinHandle<()>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

impl Slot {
    /// Whether a renewal found the lease expired.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Stops renewing, as a killed agent does: the slot frees itself after the TTL.
    pub fn stop_renewing(&self) {
        self.renewing.abort();
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
        FleetLock { etcd, ttl }
    }

    fn group_prefix(group: &str) -> String {
        format!("{PREFIX}{group}/")
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
        let key = match target {
            Some(target) => format!("{prefix}{member}/{target}"),
            None => format!("{prefix}{member}"),
        };
        let lease = self.etcd.grant(self.ttl).await?;
        let taken = |holders: Vec<etcd::KeyValue>| {
            let mut holders = holders;
            holders.sort_by_key(|kv| kv.create_revision);
            holders
                .into_iter()
                .take(limit as usize)
                .map(|kv| kv.value)
                .collect::<Vec<_>>()
        };
        if !self.etcd.create(&key, member, lease).await? {
            // The member holds a slot already: another of its attempts, or an earlier
            // life of this agent whose lease has not run out yet.
            let _ = self.etcd.revoke(lease).await;
            return Ok(Acquired::Full {
                holders: taken(self.etcd.range(&prefix).await?),
            });
        }
        let mut keys = self.etcd.range(&prefix).await?;
        keys.sort_by_key(|kv| kv.create_revision);
        let rank = keys.iter().position(|kv| kv.key == key);
        let create_revision = rank.map_or(0, |i| keys[i].create_revision);
        match rank {
            Some(rank) if rank < limit as usize => {
                let lost = Arc::new(AtomicBool::new(false));
                let renewing =
                    tokio::spawn(renew(self.etcd.clone(), lease, self.ttl, Arc::clone(&lost)));
                Ok(Acquired::Held(Slot {
                    key,
                    lease,
                    create_revision,
                    lost,
                    renewing,
                }))
            }
            _ => {
                // Revoking the lease deletes the key with it.
                self.etcd.revoke(lease).await?;
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
        let keys = self.etcd.range(&slot.key).await?;
        Ok(keys.iter().any(|kv| {
            kv.key == slot.key
                && kv.create_revision == slot.create_revision
                && kv.lease == slot.lease
        }))
    }

    /// Gives the slot back at once.
    pub async fn release(&self, slot: Slot) -> Result<(), EtcdError> {
        slot.renewing.abort();
        self.etcd.revoke(slot.lease).await
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
