use std::path::Path;

use super::*;
use crate::{apply_edits, ConfError};

/// Debian's stock nginx.conf plus a site, with the forms salve must not disturb.
pub(super) const DEBIAN: &str = r#"user www-data;
worker_processes auto;
pid /run/nginx.pid;
include /etc/nginx/modules-enabled/*.conf;

events {
	worker_connections 768;
	# multi_accept on;
}

http {

	##
	# Basic Settings
	##

	sendfile on;
	tcp_nopush on;
	types_hash_max_size 2048;
	# server_tokens off;

	log_format main '$remote_addr - $remote_user [$time_local] "$request" '
	                '$status $body_bytes_sent';

	map $http_upgrade $connection_upgrade {
		default upgrade;
		''      close;
		"~*bot" 1;
	}

	server {
		listen 80 default_server;
		listen [::]:80 default_server;
		root /var/www/html;
		index index.php index.html;
		server_name _;
		set $site_root "${document_root}/public";

		location / {
			try_files $uri $uri/ =404;
		}

		location ~ \.php$ {
			include snippets/fastcgi-php.conf;
			fastcgi_pass unix:/run/php/php8.2-fpm.sock;
			fastcgi_buffers 8 4k; # raised by hand once
		}

		location ~* \.(jpg|png)$ { expires 30d; }
	}
}
"#;

fn parse_ok(text: &str) -> NginxFile {
    match parse(Path::new("/etc/nginx/nginx.conf"), text) {
        Ok(file) => file,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn syntax_position(text: &str) -> (u32, u32, String) {
    match parse(Path::new("/etc/nginx/nginx.conf"), text) {
        Err(ConfError::Syntax {
            line, col, message, ..
        }) => (line, col, message),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn round_trip_keeps_every_byte_of_a_debian_config() {
    let file = parse_ok(DEBIAN);
    assert_eq!(apply_edits(&file.text, &[]).ok().as_deref(), Some(DEBIAN));
    assert_eq!(file.text, DEBIAN);
}

#[test]
fn round_trip_keeps_crlf_line_endings() {
    let crlf = DEBIAN.replace('\n', "\r\n");
    let file = parse_ok(&crlf);
    assert_eq!(apply_edits(&file.text, &[]).ok(), Some(crlf.clone()));
    let lf = parse_ok(DEBIAN);
    let heads = |f: &NginxFile| find_blocks(f, "location ~ \\.php$")[0].args.clone();
    assert_eq!(heads(&file), heads(&lf));
}

#[test]
fn directives_carry_positions_and_spans() {
    let file = parse_ok(DEBIAN);
    let user = &file.directives[0];
    assert_eq!((user.name.as_str(), user.line, user.col), ("user", 1, 1));
    assert_eq!(&DEBIAN[user.span.clone()], "user www-data;");
    assert_eq!(
        user.args_span.as_ref().map(|s| &DEBIAN[s.clone()]),
        Some("www-data")
    );
    assert_eq!(&DEBIAN[..user.name_end], "user");

    let php = find_blocks(&file, "location ~ \\.php$")[0];
    assert_eq!((php.line, php.col), (43, 3));
    let pass = &php.block.as_ref().map(|b| b.children[1].clone());
    let pass = pass
        .as_ref()
        .map(|d| (d.name.as_str(), d.args.clone(), d.line));
    assert_eq!(
        pass,
        Some((
            "fastcgi_pass",
            vec!["unix:/run/php/php8.2-fpm.sock".to_string()],
            45
        ))
    );
    let block = php
        .block
        .as_ref()
        .map(|b| (&DEBIAN[b.open..=b.open], &DEBIAN[b.close..=b.close]));
    assert_eq!(block, Some(("{", "}")));
    assert!(DEBIAN[php.span.clone()].ends_with("once\n\t\t}"));
}

#[test]
fn quoted_and_variable_args_are_unquoted_values() {
    let file = parse_ok(DEBIAN);
    let server = find_blocks(&file, "server")[0];
    let set = server
        .block
        .as_ref()
        .and_then(|b| b.children.iter().find(|d| d.name == "set"));
    assert_eq!(
        set.map(|d| d.args.clone()),
        Some(vec![
            "$site_root".to_string(),
            "${document_root}/public".to_string()
        ])
    );
    let set_span = set.and_then(|d| d.args_span.clone()).map(|s| &DEBIAN[s]);
    assert_eq!(set_span, Some("$site_root \"${document_root}/public\""));

    let map = find_blocks(&file, "map $http_upgrade $connection_upgrade")[0];
    let entries: Vec<(String, Vec<String>)> = map
        .block
        .as_ref()
        .map(|b| {
            b.children
                .iter()
                .map(|d| (d.name.clone(), d.args.clone()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        entries,
        [
            ("default".to_string(), vec!["upgrade".to_string()]),
            (String::new(), vec!["close".to_string()]),
            ("~*bot".to_string(), vec!["1".to_string()]),
        ]
    );
}

#[test]
fn head_joins_name_and_args_with_single_spaces() {
    let file = parse_ok("location   ~*   \\.(jpg|png)$   {\n}\nupstream php { server unix:/x; }\n");
    assert_eq!(file.directives[0].head(), "location ~* \\.(jpg|png)$");
    assert_eq!(file.directives[1].head(), "upstream php");
}

#[test]
fn find_blocks_ignores_whitespace_differences_and_searches_any_depth() {
    let file = parse_ok(DEBIAN);
    assert_eq!(find_blocks(&file, "  location   ~  \\.php$ ").len(), 1);
    assert_eq!(find_blocks(&file, "location\t~*\t\\.(jpg|png)$").len(), 1);
    assert_eq!(find_blocks(&file, "http").len(), 1);
    assert_eq!(find_blocks(&file, "location").len(), 0);
    assert_eq!(find_blocks(&file, "location /").len(), 1);
}

#[test]
fn one_line_block_parses_its_children() {
    let file = parse_ok(DEBIAN);
    let images = find_blocks(&file, "location ~* \\.(jpg|png)$")[0];
    let children = images.block.as_ref().map(|b| b.children.len());
    assert_eq!(children, Some(1));
}

#[test]
fn unbalanced_closing_brace_is_reported_where_it_stands() {
    let (line, col, message) = syntax_position("events {\n}\n  }\n");
    assert_eq!((line, col), (3, 3));
    assert!(message.contains("unexpected \"}\""), "{message}");
}

#[test]
fn unclosed_block_is_reported_at_its_opening_brace() {
    let (line, col, message) = syntax_position("http {\n  server {\n  }\n");
    assert_eq!((line, col), (1, 6));
    assert!(message.contains("\"http\""), "{message}");
}

#[test]
fn missing_semicolon_at_eof_points_after_the_last_word() {
    let (line, col, message) = syntax_position("user www-data;\nworker_processes auto\n");
    assert_eq!((line, col), (2, 22));
    assert!(message.contains("worker_processes"), "{message}");
}

#[test]
fn missing_semicolon_before_closing_brace_is_an_error() {
    let (line, col, _) = syntax_position("events {\n  worker_connections 768\n}\n");
    assert_eq!((line, col), (2, 25));
}

#[test]
fn unterminated_quote_is_reported_at_the_opening_quote() {
    let (line, col, message) = syntax_position("user www-data;\nlog_format main 'abc;\n}\n");
    assert_eq!((line, col), (2, 17));
    assert!(message.contains("unterminated"), "{message}");
}

#[test]
fn stray_semicolon_and_brace_without_a_name_are_errors() {
    assert_eq!(syntax_position("user x;;\n").0, 1);
    assert_eq!(syntax_position("\n{ }\n").0, 2);
}

#[test]
fn syntax_error_display_names_file_line_and_col() {
    let err = parse(Path::new("/etc/nginx/nginx.conf"), "a;\n}");
    let shown = err.map(|_| ()).map_err(|e| e.to_string());
    assert!(
        matches!(&shown, Err(s) if s.starts_with("/etc/nginx/nginx.conf:2:1: ")),
        "{shown:?}"
    );
}

#[test]
fn blocks_nested_past_the_limit_are_a_syntax_error_not_a_stack_overflow() {
    let deep = 200_000;
    let text = format!("{}{}", "a {".repeat(deep), "}".repeat(deep));
    let (line, col, message) = syntax_position(&text);
    assert_eq!(line, 1);
    assert_eq!(col as usize, 3 * super::parser::MAX_BLOCK_DEPTH + 3);
    assert!(message.contains("nested more than 64 levels"), "{message}");
    // At the limit itself the file still parses.
    let ok = format!(
        "{}{}",
        "a {".repeat(super::parser::MAX_BLOCK_DEPTH),
        "}".repeat(super::parser::MAX_BLOCK_DEPTH)
    );
    parse_ok(&ok);
}
