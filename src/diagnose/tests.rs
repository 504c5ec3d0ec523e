use super::*;
use crate::webconf::{fpm, nginx};
use std::path::Path;

const NGINX: &str = "user www-data;\nhttp {\n    server {\n        location ~ \\.php$ {\n            fastcgi_pass unix:/run/php/php8.2-fpm.sock;\n        }\n    }\n}\n";
const POOL: &str = "[www]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php8.2-fpm.sock\nlisten.owner = www-data\nlisten.group = www-data\nlisten.mode = 0660\npm = dynamic\npm.max_children = 5\n";
const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nwww-data:x:33:\n";

fn facts(file: &str, active: &str) -> UnitFacts {
    UnitFacts {
        unit_file_state: file.into(),
        active_state: active.into(),
    }
}

struct Case {
    nginx: nginx::NginxConfig,
    fpm: fpm::FpmConfig,
    nginx_log: Vec<String>,
    fpm_log: Vec<String>,
    accounts: Accounts,
    unit: Option<Result<UnitFacts, String>>,
    memory: Option<Memory>,
    edge: Option<EdgeProbe>,
}

impl Case {
    fn new(nginx_text: &str, pool_text: &str) -> Case {
        Case {
            nginx: nginx::NginxConfig {
                files: vec![nginx::parse(Path::new("/etc/nginx/nginx.conf"), nginx_text).unwrap()],
            },
            fpm: fpm::FpmConfig {
                files: vec![
                    fpm::parse(Path::new("/etc/php/8.2/fpm/pool.d/www.conf"), pool_text).unwrap(),
                ],
            },
            nginx_log: Vec::new(),
            fpm_log: Vec::new(),
            accounts: Accounts::parse(PASSWD, GROUP),
            unit: Some(Ok(facts("enabled", "active"))),
            memory: None,
            edge: None,
        }
    }

    fn report(&self) -> Report {
        diagnose(&Input {
            nginx: &self.nginx,
            fpm: &self.fpm,
            nginx_log: &self.nginx_log,
            fpm_log: &self.fpm_log,
            accounts: &self.accounts,
            fpm_unit: "php8.2-fpm.service",
            unit: self.unit.clone(),
            memory: self.memory.clone(),
            edge: self.edge.clone(),
        })
    }
}

fn kinds(report: &Report) -> Vec<&'static str> {
    report.findings.iter().map(|f| f.kind).collect()
}

#[test]
fn a_matching_well_permissioned_enabled_stack_is_healthy() {
    let report = Case::new(NGINX, POOL).report();
    assert!(report.healthy, "{report:#?}");
    assert!(report.render().starts_with("healthy"));
}

#[test]
fn a_fastcgi_pass_to_no_pool_is_reported_at_its_line_with_its_policy() {
    let conf = NGINX.replace("php8.2-fpm.sock", "php7.4-fpm.sock");
    let report = Case::new(&conf, POOL).report();
    let f = &report.findings[0];
    assert_eq!(f.kind, "fastcgi_pass_mismatch");
    assert_eq!(
        (f.file.as_deref(), f.line),
        (Some("/etc/nginx/nginx.conf"), Some(5))
    );
    assert_eq!(f.policy, Some("nginx-fastcgi-pass-mismatch"));
    assert!(
        f.message.contains("[www] on /run/php/php8.2-fpm.sock"),
        "{}",
        f.message
    );
    assert!(report
        .render()
        .contains("/etc/nginx/nginx.conf:5: fastcgi_pass_mismatch"));
}

#[test]
fn a_pass_through_an_upstream_block_is_followed_to_its_servers() {
    let conf = "http {\n    upstream php { server unix:/run/php/php8.2-fpm.sock; }\n    server { location / { fastcgi_pass php; } }\n}\n";
    let report = Case::new(conf, POOL).report();
    assert!(
        !kinds(&report).contains(&"fastcgi_pass_mismatch"),
        "{report:#?}"
    );
}

#[test]
fn a_root_only_socket_is_reported_at_listen_mode() {
    let pool = POOL
        .replace("listen.owner = www-data", "listen.owner = root")
        .replace("listen.group = www-data", "listen.group = root")
        .replace("listen.mode = 0660", "listen.mode = 0600");
    let report = Case::new(NGINX, &pool).report();
    let f = &report.findings[0];
    assert_eq!(f.kind, "socket_permissions");
    assert_eq!(f.line, Some(7));
    assert!(f.message.contains("root:root mode 0600"), "{}", f.message);
    assert_eq!(f.policy, Some("php-fpm-socket-permissions"));
}

#[test]
fn a_disabled_unit_is_reported_and_an_unreachable_bus_is_said_to_be_skipped() {
    let mut case = Case::new(NGINX, POOL);
    case.unit = Some(Ok(facts("disabled", "active")));
    assert_eq!(kinds(&case.report()), ["php_fpm_not_enabled"]);
    case.unit = Some(Err("cannot reach the system bus".into()));
    let report = case.report();
    assert!(report.healthy);
    assert!(
        report.skipped[0].contains("cannot reach the system bus"),
        "{:?}",
        report.skipped
    );
}

#[test]
fn too_big_header_lines_point_at_where_the_buffer_belongs() {
    let mut case = Case::new(NGINX, POOL);
    case.nginx_log = vec![
        "2026/11/25 01:00:03 [error] 7#7: *4 upstream sent too big header while reading response header from upstream, request: \"GET /big-header.php HTTP/1.1\"".into(),
    ];
    let report = case.report();
    let f = &report.findings[0];
    assert_eq!(f.kind, "headers_too_big");
    assert_eq!(
        f.line,
        Some(5),
        "the fastcgi_pass the default buffer applies to"
    );
    assert!(
        f.message.contains("nginx's default fastcgi_buffer_size 4k"),
        "{}",
        f.message
    );
    assert_eq!(f.evidence.len(), 1);
    assert_eq!(report.gateway_errors.total_502(), 1);
}

#[test]
fn a_pool_that_reached_max_children_is_sized_against_memory() {
    let mut case = Case::new(NGINX, POOL);
    case.fpm_log = vec!["[25-Nov-2026 01:00:00] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it".into()];
    case.memory = Some(Memory {
        available_bytes: 1000 * 1024 * 1024,
        workers: vec![("www".into(), 50 * 1024 * 1024); 5],
    });
    let report = case.report();
    let f = &report.findings[0];
    assert_eq!((f.kind, f.line), ("max_children_reached", Some(9)));
    assert!(
        f.message.contains("memory fits about 25 workers"),
        "{}",
        f.message
    );
    assert_eq!(f.policy, Some("php-fpm-max-children"));
}

#[test]
fn max_children_beyond_memory_is_a_finding_even_when_never_reached() {
    let mut case = Case::new(
        NGINX,
        &POOL.replace("pm.max_children = 5", "pm.max_children = 500"),
    );
    case.memory = Some(Memory {
        available_bytes: 100 * 1024 * 1024,
        workers: vec![("www".into(), 50 * 1024 * 1024); 2],
    });
    assert_eq!(kinds(&case.report()), ["max_children_over_memory"]);
}

#[test]
fn timeouts_are_504s_with_their_own_policy_and_crashes_point_at_php_fpm_down() {
    let mut case = Case::new(NGINX, POOL);
    case.nginx_log = vec![
        "[error] upstream timed out (110: Connection timed out) while reading response header from upstream".into(),
        "[error] connect() to unix:/run/php/php8.2-fpm.sock failed (111: Connection refused) while connecting to upstream".into(),
    ];
    let report = case.report();
    assert_eq!(kinds(&report), ["php_fpm_down", "upstream_timeouts"]);
    assert!(
        report.findings[0]
            .message
            .contains("active now: these are from before it recovered"),
        "{}",
        report.findings[0].message
    );
    assert_eq!(report.gateway_errors.gateway_timeout, 1);
    assert_eq!(report.findings[1].policy, Some("nginx-upstream-timeout"));
}

#[test]
fn a_failing_public_url_with_a_healthy_origin_is_the_edge() {
    let mut case = Case::new(NGINX, POOL);
    case.edge = Some(EdgeProbe {
        public_url: "https://www.example.com/".into(),
        public: Ok(502),
        origin_url: "http://127.0.0.1/".into(),
        origin: Ok(200),
    });
    let report = case.report();
    assert_eq!(kinds(&report), ["edge"]);
    assert_eq!(report.findings[0].policy, Some("edge-502"));
    case.edge = Some(EdgeProbe {
        origin: Ok(502),
        ..case.edge.clone().unwrap()
    });
    assert_eq!(kinds(&case.report()), ["origin_failing"]);
}

#[test]
fn a_pass_through_an_upstream_to_nowhere_is_reported_for_fixing_by_hand() {
    let conf = "http {\n    upstream php { server unix:/run/php/php7.4-fpm.sock; }\n    server { location / { fastcgi_pass php; } }\n}\n";
    let report = Case::new(conf, POOL).report();
    let f = &report.findings[0];
    assert_eq!(f.kind, "fastcgi_pass_mismatch");
    assert_eq!(
        f.policy, None,
        "alignFastcgiPass cannot rewrite upstream servers"
    );
    assert!(f.message.contains("fix them by hand"), "{}", f.message);
}

#[test]
fn a_private_pool_nginx_never_connects_to_is_not_a_permission_problem() {
    let pool = format!("{POOL}[admin]\nlisten = /run/php/admin.sock\nlisten.owner = root\nlisten.group = root\nlisten.mode = 0600\n");
    assert!(Case::new(NGINX, &pool).report().healthy);
}

#[test]
fn a_mismatch_explains_only_the_missing_socket_it_names() {
    let conf = NGINX.replace("php8.2-fpm.sock", "php7.4-fpm.sock");
    let mut case = Case::new(&conf, POOL);
    case.nginx_log = vec![
        "[crit] connect() to unix:/run/php/php7.4-fpm.sock failed (2: No such file or directory) while connecting to upstream".into(),
        "[crit] connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or directory) while connecting to upstream".into(),
    ];
    let report = case.report();
    assert_eq!(kinds(&report), ["fastcgi_pass_mismatch", "php_fpm_down"]);
    assert!(
        report.findings[1].message.starts_with("1 connections"),
        "{}",
        report.findings[1].message
    );
}

#[test]
fn a_host_with_one_pool_is_told_of_the_backup_pool_and_stays_healthy() {
    let report = Case::new(NGINX, POOL).report();
    assert!(report.healthy, "a suggestion is no finding: {report:#?}");
    let s = &report.suggestions[0];
    assert_eq!(
        (s.kind, s.policy),
        ("single_pool", Some("php-fpm-backup-pool"))
    );
    assert_eq!(
        (s.file.as_deref(), s.line),
        (Some("/etc/nginx/nginx.conf"), Some(5))
    );
    assert!(
        s.message
            .starts_with("nginx passes PHP to one pool (unix:/run/php/php8.2-fpm.sock): "),
        "{}",
        s.message
    );
    let text = report.render();
    assert!(
        text.contains("suggestion: single_pool: ")
            && text.contains("    see: policies/php-fpm-backup-pool.yaml"),
        "{text}"
    );
    // An upstream of two pools, a backup among them, is the pattern already; an
    // upstream of one server is still one pool.
    let two = "http {\n    upstream php_pools {\n        server unix:/run/php/php8.2-fpm.sock max_fails=0;\n        server unix:/run/php/php8.2-fpm-backup.sock backup max_fails=0;\n    }\n    server { location ~ \\.php$ { fastcgi_pass php_pools; fastcgi_next_upstream error timeout; } }\n}\n";
    let pools = format!("{POOL}[backup]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php8.2-fpm-backup.sock\nlisten.owner = www-data\nlisten.group = www-data\nlisten.mode = 0660\npm = dynamic\npm.max_children = 5\n");
    assert!(Case::new(two, &pools).report().suggestions.is_empty());
    let one_upstream = "http {\n    upstream php { server unix:/run/php/php8.2-fpm.sock; }\n    server { location / { fastcgi_pass php; } }\n}\n";
    assert_eq!(
        Case::new(one_upstream, POOL).report().suggestions[0].kind,
        "single_pool"
    );
}
