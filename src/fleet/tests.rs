//! Against a real etcd (Debian's 3.4), started here by PID with a data directory and
//! ports of its own for each test, and killed by PID at the end.

use super::*;
use crate::policy::HttpUrl;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const ETCD: &str = "/usr/bin/etcd";

pub(crate) struct EtcdServer {
    child: Child,
    dir: PathBuf,
    client_port: u16,
}

impl EtcdServer {
    /// `port`: the client port; the peer port is the next one. Each test has its own.
    pub(crate) fn start(name: &str, port: u16) -> Option<EtcdServer> {
        if !std::path::Path::new(ETCD).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{ETCD} is missing; under CI it must run (scripts/setup-test.sh installs it)"
            );
            eprintln!("skipping: {ETCD} is not installed");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("salve-etcd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{}", port + 1);
        let child = Command::new(ETCD)
            .arg("--name")
            .arg("salve-test")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("salve-test={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        let server = EtcdServer {
            child,
            dir,
            client_port: port,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd never listened on {port}");
    }

    pub(crate) fn etcd(&self) -> Etcd {
        self.etcd_at()
    }

    pub(crate) fn url(&self) -> HttpUrl {
        HttpUrl::parse(&format!("http://127.0.0.1:{}/", self.client_port)).unwrap()
    }

    fn etcd_at(&self) -> Etcd {
        let url = HttpUrl::parse(&format!("http://127.0.0.1:{}/", self.client_port)).unwrap();
        Etcd::new(url, Duration::from_secs(5))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // Only the process this test started, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first request may come before etcd has elected itself leader.
pub(crate) async fn ready(etcd: &Etcd) {
    for _ in 0..50 {
        if etcd.range("/").await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("etcd never answered");
}

fn held(acquired: &Acquired) -> bool {
    matches!(acquired, Acquired::Held(_))
}

#[tokio::test]
async fn two_agents_racing_for_one_slot_get_exactly_one() {
    let Some(server) = EtcdServer::start("race", 23711) else {
        return;
    };
    let etcd = server.etcd();
    ready(&etcd).await;
    for round in 0..5 {
        let a = FleetLock::new(etcd.clone(), Duration::from_secs(5));
        let b = FleetLock::new(etcd.clone(), Duration::from_secs(5));
        let group = format!("web-{round}");
        let (got_a, got_b) = tokio::join!(
            a.acquire(&group, "node-a", 1),
            b.acquire(&group, "node-b", 1)
        );
        let (got_a, got_b) = (got_a.unwrap(), got_b.unwrap());
        assert!(
            held(&got_a) != held(&got_b),
            "round {round}: exactly one holds"
        );
        let loser = if held(&got_a) { &got_b } else { &got_a };
        match loser {
            Acquired::Full { holders } => assert_eq!(holders.len(), 1),
            Acquired::Held(_) => unreachable!(),
        }
        // The loser left nothing behind: once the winner lets go, the slot is free.
        for got in [got_a, got_b] {
            if let Acquired::Held(slot) = got {
                a.release(slot).await.unwrap();
            }
        }
        assert!(etcd
            .range(&format!("/salve/fleet/{group}/"))
            .await
            .unwrap()
            .is_empty());
    }
    // Two slots: two hold, a third waits.
    let lock = FleetLock::new(etcd.clone(), Duration::from_secs(5));
    let first = lock.acquire("pair", "node-a", 2).await.unwrap();
    let second = lock.acquire("pair", "node-b", 2).await.unwrap();
    let third = lock.acquire("pair", "node-c", 2).await.unwrap();
    assert!(held(&first) && held(&second) && !held(&third));
    match third {
        Acquired::Full { holders } => assert_eq!(holders, ["node-a", "node-b"]),
        Acquired::Held(_) => unreachable!(),
    }
}

#[tokio::test]
async fn a_holder_that_stops_renewing_frees_its_slot_after_the_ttl_and_is_fenced_out() {
    let Some(server) = EtcdServer::start("ttl", 23721) else {
        return;
    };
    let etcd = server.etcd();
    ready(&etcd).await;
    let lock = FleetLock::new(etcd.clone(), Duration::from_secs(2));
    let Acquired::Held(slot) = lock.acquire("web", "node-a", 1).await.unwrap() else {
        panic!("a free slot");
    };
    // Renewed past its TTL, the slot stays held.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(lock.still_held(&slot).await.unwrap());
    assert!(!held(&lock.acquire("web", "node-b", 1).await.unwrap()));
    // As if node-a were killed (or stopped) now: nobody renews its lease.
    slot.stop_renewing();
    let started = std::time::Instant::now();
    let taken = loop {
        match lock.acquire("web", "node-b", 1).await.unwrap() {
            Acquired::Held(slot) => break slot,
            Acquired::Full { .. } => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the slot never freed"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "freed only by the TTL"
    );
    // node-a, continued, finds its slot gone and must not act.
    assert!(!lock.still_held(&slot).await.unwrap());
    assert!(lock.still_held(&taken).await.unwrap());
}

#[tokio::test]
async fn an_unreachable_etcd_is_an_error_not_a_slot() {
    let (url, _bound) = crate::signal::http::test_server::refused_url();
    let lock = FleetLock::new(
        Etcd::new(url, Duration::from_secs(1)),
        Duration::from_secs(2),
    );
    match lock.acquire("web", "node-a", 1).await {
        Err(EtcdError::Unreachable { .. }) => {}
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a slot from nowhere"),
    }
}

#[tokio::test]
async fn a_local_group_keeps_its_slots_in_the_agent_with_the_same_rules() {
    let lock = FleetLock::local();
    let a = lock
        .acquire_for("web", "lb", Some("node-a"), 1)
        .await
        .unwrap();
    let Acquired::Held(a) = a else {
        panic!("the first server takes the slot");
    };
    match lock
        .acquire_for("web", "lb", Some("node-b"), 1)
        .await
        .unwrap()
    {
        Acquired::Full { holders } => assert_eq!(holders, ["node-a"]),
        Acquired::Held(_) => panic!("one slot, one holder"),
    }
    // Another group is another fleet; a server asking twice is refused.
    assert!(held(
        &lock
            .acquire_for("api", "lb", Some("node-b"), 1)
            .await
            .unwrap()
    ));
    assert!(!held(
        &lock
            .acquire_for("web", "lb", Some("node-a"), 2)
            .await
            .unwrap()
    ));
    assert!(lock.still_held(&a).await.unwrap());
    let stale = Slot {
        key: a.key.clone(),
        lease: 0,
        create_revision: a.create_revision,
        lost: Default::default(),
        renewing: None,
    };
    lock.release(a).await.unwrap();
    // The fencing check holds in memory too: a released slot is nobody's.
    assert!(!lock.still_held(&stale).await.unwrap());
    let b = lock
        .acquire_for("web", "lb", Some("node-b"), 1)
        .await
        .unwrap();
    assert!(held(&b));
    // Releasing a stale copy never frees the slot someone else holds now.
    lock.release(stale).await.unwrap();
    assert!(!held(
        &lock
            .acquire_for("web", "lb", Some("node-c"), 1)
            .await
            .unwrap()
    ));
}
