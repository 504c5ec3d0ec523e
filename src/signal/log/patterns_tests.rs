use super::*;

const SOCK_GONE: &str = r#"2026/11/24 22:00:30 [crit] 812#812: *41 connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or directory) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /ping.php HTTP/1.1", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "127.0.0.1:8480""#;

fn all() -> PatternSet {
    PatternSet::all_builtins().unwrap()
}

fn only<'s, 'a>(set: &'s PatternSet, line: &'a str) -> Match<'s, 'a> {
    let mut found = set.matches(line);
    assert_eq!(found.len(), 1, "{line}: {found:?}");
    found.remove(0)
}

#[test]
fn every_builtin_compiles_and_is_found_by_name() {
    for name in builtin_names() {
        let pattern = builtin(name).unwrap();
        Regex::new(pattern.regex).unwrap();
        assert!(!pattern.description.is_empty());
    }
    assert_eq!(builtin_names().count(), 5);
    assert!(builtin("nginx.nope").is_none());
}

#[test]
fn socket_gone_line_yields_every_field() {
    let set = all();
    let m = only(&set, SOCK_GONE);
    assert_eq!(m.name, "nginx.upstream_connect_failed");
    assert_eq!(m.field("socket"), Some("unix:/run/php/php8.2-fpm.sock"));
    assert_eq!(m.field("errno"), Some("2"));
    assert_eq!(m.field("reason"), Some("No such file or directory"));
    assert_eq!(m.field("client"), Some("127.0.0.1"));
    assert_eq!(m.field("server"), Some("_"));
    assert_eq!(m.field("request"), Some("GET /ping.php HTTP/1.1"));
    assert_eq!(
        m.field("upstream"),
        Some("fastcgi://unix:/run/php/php8.2-fpm.sock:")
    );
    assert_eq!(m.field("host"), Some("127.0.0.1:8480"));
}

#[test]
fn connection_refused_and_backlog_full_are_connect_failures_whatever_the_level() {
    let set = all();
    for (errno, reason, level) in [
        ("111", "Connection refused", "error"),
        ("11", "Resource temporarily unavailable", "error"),
        ("2", "No such file or directory", "crit"),
    ] {
        let line = SOCK_GONE
            .replace(
                "(2: No such file or directory)",
                &format!("({errno}: {reason})"),
            )
            .replace("[crit]", &format!("[{level}]"));
        let m = only(&set, &line);
        assert_eq!(m.name, "nginx.upstream_connect_failed");
        assert_eq!(m.field("errno"), Some(errno));
        assert_eq!(m.field("reason"), Some(reason));
    }
}

#[test]
fn tcp_upstream_has_no_socket_but_an_upstream_address() {
    let line = r#"2026/11/24 22:01:02 [error] 813#813: *97 connect() failed (111: Connection refused) while connecting to upstream, client: 203.0.113.9, server: shop.example.com, request: "POST /cart.php HTTP/2.0", upstream: "fastcgi://127.0.0.1:9000", host: "shop.example.com""#;
    let set = all();
    let m = only(&set, line);
    assert_eq!(m.name, "nginx.upstream_connect_failed");
    assert_eq!(m.field("socket"), None);
    assert_eq!(m.field("upstream"), Some("fastcgi://127.0.0.1:9000"));
    assert_eq!(m.field("client"), Some("203.0.113.9"));
    assert_eq!(m.field("server"), Some("shop.example.com"));
    assert_eq!(m.field("request"), Some("POST /cart.php HTTP/2.0"));
}

#[test]
fn the_causes_message_fragments_match_without_the_nginx_context() {
    // The exact message fragments nginx 1.22 and php-fpm 8.2 write for each 502 cause
    // (the README's table of causes quotes them).
    let set = all();
    let cases = [
        ("connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or directory) while connecting to upstream", "nginx.upstream_connect_failed"),
        ("connect() to unix:/run/php/php8.2-fpm.sock failed (111: Connection refused) while connecting to upstream", "nginx.upstream_connect_failed"),
        ("connect() to unix:/run/php/php8.2-fpm.sock failed (11: Resource temporarily unavailable) while connecting to upstream", "nginx.upstream_connect_failed"),
        ("connect() to unix:/run/php/php8.2-fpm.sock failed (13: Permission denied) while connecting to upstream", "nginx.upstream_permission_denied"),
        ("upstream sent too big header while reading response header from upstream", "nginx.too_big_header"),
        ("upstream timed out (110: Connection timed out) while reading response header from upstream", "nginx.upstream_timed_out"),
        ("WARNING: [pool www] server reached pm.max_children setting (5), consider raising it", "phpfpm.max_children_reached"),
    ];
    for (line, name) in cases {
        assert_eq!(only(&set, line).name, name, "{line}");
    }
}

#[test]
fn permission_denied_yields_socket_and_client() {
    let line = SOCK_GONE.replace("(2: No such file or directory)", "(13: Permission denied)");
    let set = all();
    let m = only(&set, &line);
    assert_eq!(m.name, "nginx.upstream_permission_denied");
    assert_eq!(m.field("errno"), Some("13"));
    assert_eq!(m.field("socket"), Some("unix:/run/php/php8.2-fpm.sock"));
    assert_eq!(m.field("client"), Some("127.0.0.1"));
}

#[test]
fn too_big_header_and_timeout_yield_request_fields() {
    let set = all();
    let big = r#"2026/11/24 22:03:11 [error] 812#812: *120 upstream sent too big header while reading response header from upstream, client: 198.51.100.4, server: _, request: "GET /big.php HTTP/1.1", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "127.0.0.1:8480""#;
    let m = only(&set, big);
    assert_eq!(m.name, "nginx.too_big_header");
    assert_eq!(m.field("client"), Some("198.51.100.4"));
    assert_eq!(m.field("request"), Some("GET /big.php HTTP/1.1"));

    let slow = r#"2026/11/24 22:04:40 [error] 812#812: *131 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 127.0.0.1, server: _, request: "GET /slow.php HTTP/1.1", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock", host: "127.0.0.1:8480""#;
    let m = only(&set, slow);
    assert_eq!(m.name, "nginx.upstream_timed_out");
    assert_eq!(m.field("errno"), Some("110"));
    assert_eq!(
        m.field("phase"),
        Some("reading response header from upstream")
    );
    assert_eq!(m.field("request"), Some("GET /slow.php HTTP/1.1"));
    assert_eq!(m.field("host"), Some("127.0.0.1:8480"));
}

#[test]
fn max_children_yields_pool_and_limit() {
    let line =
        "[24-Nov-2026 22:05:00] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it";
    let set = all();
    let m = only(&set, line);
    assert_eq!(m.name, "phpfpm.max_children_reached");
    assert_eq!(m.field("pool"), Some("www"));
    assert_eq!(m.field("max_children"), Some("5"));
}

#[test]
fn ordinary_noise_matches_nothing() {
    let set = all();
    let noise = [
        r#"2026/11/24 22:00:31 [error] 812#812: *42 open() "/var/www/html/favicon.ico" failed (2: No such file or directory), client: 192.0.2.7, server: _, request: "GET /favicon.ico HTTP/1.1", host: "127.0.0.1:8480""#,
        r#"2026/11/24 22:00:32 [warn] 812#812: *43 an upstream response is buffered to a temporary file /var/lib/nginx/fastcgi/1/00/0000000001 while reading upstream, client: 192.0.2.8, server: _, request: "GET /report.php HTTP/1.1", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "127.0.0.1:8480""#,
        "2026/11/24 22:00:33 [info] 812#812: *44 client closed connection while waiting for request, client: 192.0.2.9, server: 0.0.0.0:80",
        "2026/11/24 22:00:34 [notice] 811#811: signal process started",
        "[24-Nov-2026 22:00:35] NOTICE: fpm is running, pid 900",
        "[24-Nov-2026 22:00:36] WARNING: [pool www] seems busy (you may need to increase pm.start_servers, or pm.min/max_spare_servers), spawning 8 children",
        "",
    ];
    for line in noise {
        assert!(set.matches(line).is_empty(), "{line}");
        assert!(!set.is_match(line), "{line}");
    }
}

#[test]
fn a_set_of_some_builtins_and_a_custom_pattern_reports_each_by_name() {
    let mut patterns = vec![(
        "custom.ping".to_string(),
        Regex::new(r#"request: "GET (?P<path>/ping\.php)"#).unwrap(),
    )];
    let connect = builtin("nginx.upstream_connect_failed").unwrap();
    patterns.push((connect.name.into(), Regex::new(connect.regex).unwrap()));
    let set = PatternSet::new(patterns).unwrap();
    let found = set.matches(SOCK_GONE);
    let names: Vec<_> = found.iter().map(|m| m.name).collect();
    assert_eq!(names, ["custom.ping", "nginx.upstream_connect_failed"]);
    assert_eq!(found[0].fields, vec![("path", "/ping.php")]);
}

#[test]
fn unknown_builtin_names_the_known_ones() {
    let err = PatternSet::from_builtins(["nginx.typo"]).err().unwrap();
    let text = err.to_string();
    assert!(text.contains("nginx.typo"), "{text}");
    assert!(text.contains("nginx.upstream_connect_failed"), "{text}");
}

#[test]
fn scanning_a_chunk_finds_exactly_the_lines_matching_line_by_line_finds() {
    let set = PatternSet::all_builtins().unwrap();
    let lines = [
        SOCK_GONE,
        "2026/11/25 01:00:00 [warn] 7#7: *9 an upstream response is buffered to a temporary file",
        "2026/11/25 01:00:00 [error] 7#7: *10 open() \"/srv/favicon.ico\" failed (2: No such file or directory)",
        "2026/11/25 01:00:01 [error] 7#7: *11 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 10.0.0.1",
        "[25-Nov-2026 01:00:02] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it",
        "2026/11/25 01:00:03 [error] 7#7: *12 upstream sent too big header while reading response header from upstream",
        "",
    ];
    let text = lines.join("\n") + "\n" + &lines.join("\r\n");
    let mut scanned = Vec::new();
    set.scan(&text, |line, found| {
        scanned.push((line.to_string(), found.len()))
    });
    let expected: Vec<(String, usize)> = text
        .lines()
        .map(|l| (l.to_string(), set.matches(l).len()))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(scanned, expected);
    assert_eq!(scanned.len(), 8);
}

#[test]
fn an_ondemand_pool_reaching_its_limit_matches_too() {
    let set = all();
    let line = "[25-Nov-2026 01:00:00] WARNING: [pool api] server reached max_children setting (8), consider raising it";
    let m = only(&set, line);
    assert_eq!(m.name, "phpfpm.max_children_reached");
    assert_eq!(m.field("pool"), Some("api"));
    assert_eq!(m.field("max_children"), Some("8"));
}
