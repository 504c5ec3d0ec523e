//! A node-side attempt against an nginx load balancer: its upstream's server line
//! edited through the config-edit pipeline, each change checked by Debian's real
//! `nginx -t` before it replaces the file, and applied with a reload.

use super::*;
use std::path::{Path, PathBuf};

const NGINX: &str = "/usr/sbin/nginx";
const UPSTREAM: &str = "# the two nodes\nupstream nodes {\n    server 127.0.0.1:18001 weight=10 max_fails=0;\n    server 127.0.0.1:18002 weight=10;  # node b\n}\nserver {\n    listen 127.0.0.1:18000;\n    location / { proxy_pass http://nodes; }\n}\n";

/// nginx.conf and lb.conf in a directory of their own, every path nginx opens
/// inside it (a check as root would otherwise create the host's temp dirs).
struct Site {
    dir: PathBuf,
}

impl Site {
    fn new(name: &str) -> Option<Site> {
        if !Path::new(NGINX).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{NGINX} is missing; under CI it must run"
            );
            eprintln!("skipping: {NGINX} is not installed");
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("salve-upstream-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!("pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n    access_log off;\n    client_body_temp_path {d}/t1;\n    proxy_temp_path {d}/t2;\n    fastcgi_temp_path {d}/t3;\n    uwsgi_temp_path {d}/t4;\n    scgi_temp_path {d}/t5;\n    include {d}/sites/*.conf;\n}}\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("sites")).unwrap();
        std::fs::write(dir.join("sites/lb.conf"), UPSTREAM).unwrap();
        Some(Site { dir })
    }

    fn file(&self) -> PathBuf {
        self.dir.join("sites/lb.conf")
    }

    fn text(&self) -> String {
        std::fs::read_to_string(self.file()).unwrap()
    }

    fn policy(&self, server: &str) -> Policy {
        let nginx = serde_json::json!({
            "file": self.file(),
            "upstream": "nodes",
            "server": server,
            "config": self.dir.join("nginx.conf"),
            "unit": "lb-nginx.service"
        });
        node_side(serde_json::json!({ "nginx": nginx, "ramp": { "steps": 2, "interval": "10ms" } }))
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_drained_server_is_down_while_healing_and_back_byte_for_byte_after() {
    let Some(site) = Site::new("ramp") else {
        return;
    };
    let file = site.file();
    let executor = Scripted::new(vec![Ok("restarted".into())], true);
    let outcome = executor
        .run_attempt(&site.policy("127.0.0.1:18002"), 1)
        .await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    let detail = outcome.detail.unwrap();
    let at = format!(
        "upstream nodes server 127.0.0.1:18002 in {}",
        file.display()
    );
    assert_eq!(
        detail.steps,
        [
            format!("drain: drained {at}: weight 10 -> down, weight 10"),
            "restart: restarted".to_string(),
            format!("ramp: step 1 of 2: {at}: down, weight 10 -> weight 5"),
            format!("ramp: step 2 of 2: {at}: weight 5 -> weight 10"),
        ]
    );
    assert_eq!(site.text(), UPSTREAM, "every byte as it was");
    assert_eq!(detail.diffs.len(), 3, "{:?}", detail.diffs);
    assert!(
        detail.diffs[0].contains("+    server 127.0.0.1:18002 weight=10 down;  # node b"),
        "{}",
        detail.diffs[0]
    );
    assert_eq!(
        executor.family().reloads.lock().unwrap().as_slice(),
        ["lb-nginx.service"; 3]
    );
}

#[tokio::test]
async fn a_drain_nginx_t_refuses_leaves_the_file_as_it_was_and_reloads_nothing() {
    let Some(site) = Site::new("refused") else {
        return;
    };
    // Someone broke another file of the config: nginx still serves its old one,
    // and no edit may be swapped in until the config checks again.
    std::fs::write(
        site.dir.join("sites/typo.conf"),
        "server { listen 127.0.0.1:18009; bogus_directive on; }\n",
    )
    .unwrap();
    let executor = Scripted::new(vec![Ok("restarted".into())], true);
    let (drain, escalate) = not_drained(&executor, &site).await;
    assert!(
        drain.starts_with("drain: not drained: upstream nodes server 127.0.0.1:18002 in ")
            && drain.contains("validation failed, file not replaced: ")
            && drain.contains("unknown directive \"bogus_directive\"")
            && drain.ends_with("; the rest of the attempt goes on"),
        "{drain}"
    );
    assert!(escalate.is_some_and(|why| why.contains("bogus_directive")));
    assert_eq!(site.text(), UPSTREAM);
    assert!(executor.family().reloads.lock().unwrap().is_empty());
    // The same trouble again is not escalated twice.
    let (_, again) = not_drained(&executor, &site).await;
    assert_eq!(again, None);
}

/// A drain that could not be made: the pool is healed all the same (the restart
/// ran and the attempt verified), its step says why, and the attempt asks for an
/// escalation. Returns the drain's step and that request.
async fn not_drained(executor: &Executor<Scripted>, site: &Site) -> (String, Option<String>) {
    let asked = executor.family().asked().len();
    let outcome = executor
        .run_attempt(&site.policy("127.0.0.1:18002"), 1)
        .await;
    assert_eq!(outcome.result, OutcomeResult::Ok, "{outcome:?}");
    assert_eq!(outcome.verified, Some(true));
    assert_eq!(
        executor.family().asked().len(),
        asked + 1,
        "the restart ran"
    );
    let detail = outcome.detail.unwrap();
    assert_eq!(
        detail.steps.len(),
        2,
        "no ramp for a server never drained: {:?}",
        detail.steps
    );
    (detail.steps[0].clone(), detail.escalate)
}

#[tokio::test]
async fn a_reload_that_fails_puts_the_original_back() {
    let Some(site) = Site::new("reload") else {
        return;
    };
    let executor = Scripted::new(vec![Ok("restarted".into())], true);
    executor
        .family()
        .reload_fails
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (drain, escalate) = not_drained(&executor, &site).await;
    assert!(
        drain.contains("applying the change failed: reload of lb-nginx.service: scripted failure")
            && drain.contains("original restored, but applying it failed"),
        "{drain}"
    );
    assert!(escalate.is_some());
    assert_eq!(site.text(), UPSTREAM);
}

#[tokio::test]
async fn the_last_server_taking_requests_is_never_taken_down() {
    let Some(site) = Site::new("last") else {
        return;
    };
    let one_down = UPSTREAM.replace("weight=10 max_fails=0;", "weight=10 max_fails=0 down;");
    std::fs::write(site.file(), &one_down).unwrap();
    let executor = Scripted::new(vec![Ok("restarted".into())], true);
    let (drain, _) = not_drained(&executor, &site).await;
    assert!(
        drain.contains("refused to drain upstream nodes server 127.0.0.1:18002")
            && drain.contains("it is the last server taking requests in its upstream (127.0.0.1:18001: down, weight 10; 127.0.0.1:18002: weight 10)"),
        "{drain}"
    );
    assert_eq!(site.text(), one_down);
    assert!(executor.family().reloads.lock().unwrap().is_empty());
    // Once the other server is back, the drain is made, and a later trouble is
    // news again.
    std::fs::write(site.file(), UPSTREAM).unwrap();
    let outcome = executor
        .run_attempt(&site.policy("127.0.0.1:18002"), 2)
        .await;
    assert_eq!(outcome.detail.unwrap().escalate, None);
    std::fs::write(site.file(), &one_down).unwrap();
    let (_, escalate) = not_drained(&executor, &site).await;
    assert!(escalate.is_some());
}
