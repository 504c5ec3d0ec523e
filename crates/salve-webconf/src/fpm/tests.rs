use std::path::Path;

use super::*;
use crate::test_support::TempDir;
use crate::{apply_edits, Edit};

/// Shortened Debian /etc/php/8.2/fpm/pool.d/www.conf: comments dominate.
const WWW: &str = "; Start a new pool named 'www'.
; the variable $pool can be used in any directive and will be replaced by the
; pool name ('www' here)
[www]

; Unix user/group of processes
; Note: The user is mandatory. If the group is not set, the default user's group
;       will be used.
user = www-data
group = www-data

; The address on which to accept FastCGI requests.
listen = /run/php/php8.2-fpm.sock

; Set permissions for unix socket, if one is used.
listen.owner = www-data
listen.group = www-data
;listen.mode = 0660

pm = dynamic
pm.max_children = 5
  php_admin_value[memory_limit] = \"128M\"
listen.mode = 0666 ; was 0660
pm.max_children = 12

; Default Value: nothing is defined by default except the values in php.ini and
;                specified at startup with the -d argument
;php_admin_flag[log_errors] = on
";

fn parse_ok(text: &str) -> FpmFile {
    match parse(Path::new("/etc/php/8.2/fpm/pool.d/www.conf"), text) {
        Ok(file) => file,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn apply(text: &str, edit: Edit) -> String {
    match apply_edits(text, &[edit]) {
        Ok(out) => out,
        Err(e) => panic!("edit failed: {e}"),
    }
}

fn single_file_config(text: &str) -> FpmConfig {
    FpmConfig {
        files: vec![parse_ok(text)],
    }
}

#[test]
fn debian_www_conf_parses_with_positions() {
    let file = parse_ok(WWW);
    assert!(file.entries_before_any_section.is_empty());
    assert_eq!(file.sections.len(), 1);
    let www = &file.sections[0];
    assert_eq!((www.name.as_str(), www.line), ("www", 4));
    assert_eq!(&WWW[www.header_span.clone()], "[www]");
    assert_eq!(www.end, WWW.len());
    let keys: Vec<&str> = www.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "user",
            "group",
            "listen",
            "listen.owner",
            "listen.group",
            "pm",
            "pm.max_children",
            "php_admin_value[memory_limit]",
            "listen.mode",
            "pm.max_children",
        ]
    );
    let listen = &www.entries[2];
    assert_eq!((listen.line, listen.col), (13, 1));
    assert_eq!(
        &WWW[listen.line_span.clone()],
        "listen = /run/php/php8.2-fpm.sock\n"
    );
}

#[test]
fn quoted_values_lose_quotes_but_the_span_keeps_them() {
    let file = parse_ok(WWW);
    let memory = &file.sections[0].entries[7];
    assert_eq!(memory.value, "128M");
    assert_eq!(&WWW[memory.value_span.clone()], "\"128M\"");
    assert_eq!(memory.col, 3);
}

#[test]
fn inline_comment_is_not_part_of_an_unquoted_value() {
    let file = parse_ok(WWW);
    let mode = &file.sections[0].entries[8];
    assert_eq!(mode.value, "0666");
    assert_eq!(&WWW[mode.value_span.clone()], "0666");
}

#[test]
fn pools_skip_global_and_last_value_wins() {
    let text = format!("[global]\npid = /run/php/fpm.pid\n{WWW}[api]\nlisten = 127.0.0.1:9001\n[www]\nuser = nobody\n");
    let config = single_file_config(&text);
    let pools = config.pools();
    let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["www", "api"]);
    let www = &pools[0];
    assert_eq!(www.section.line, 6);
    assert_eq!(
        www.get("pm.max_children")
            .map(|e| (e.value.as_str(), e.line)),
        Some(("12", 26))
    );
    assert_eq!(www.get("user").map(|e| e.value.as_str()), Some("nobody"));
    assert_eq!(
        www.get("listen.mode").map(|e| e.value.as_str()),
        Some("0666")
    );
    assert!(www.get("pm.max_requests").is_none());
    let pid = config.global("pid").map(|(_, e)| e.value.as_str());
    assert_eq!(pid, Some("/run/php/fpm.pid"));
    assert!(config.global("listen").is_none());
}

#[test]
fn replace_value_keeps_everything_else_byte_identical() {
    let file = parse_ok(WWW);
    let www = &file.sections[0];
    let mode = &www.entries[8];
    let out = apply(WWW, replace_value(mode, "0660"));
    assert_eq!(
        out,
        WWW.replace(
            "listen.mode = 0666 ; was 0660",
            "listen.mode = 0660 ; was 0660"
        )
    );
    let memory = &www.entries[7];
    let out = apply(WWW, replace_value(memory, "\"256M\""));
    assert_eq!(out, WWW.replace("\"128M\"", "\"256M\""));
}

#[test]
fn insert_entry_goes_after_the_last_entry_not_the_trailing_comments() {
    let file = parse_ok(WWW);
    let out = apply(
        WWW,
        insert_entry(&file, &file.sections[0], "pm.max_requests", "500"),
    );
    assert_eq!(
        out,
        WWW.replace(
            "pm.max_children = 12\n",
            "pm.max_children = 12\npm.max_requests = 500\n"
        )
    );
}

#[test]
fn insert_entry_into_an_empty_section_follows_the_header() {
    let text = "[global]\r\n[www]\r\n; nothing yet\r\n";
    let file = parse_ok(text);
    let edit = insert_entry(&file, &file.sections[1], "listen.mode", "0660");
    assert_eq!(
        apply(text, edit),
        "[global]\r\n[www]\r\nlisten.mode = 0660\r\n; nothing yet\r\n"
    );
    assert_eq!(file.sections[0].end, "[global]\r\n".len());
}

#[test]
fn insert_entry_at_end_of_file_without_newline() {
    let text = "[www]\nuser = www-data";
    let file = parse_ok(text);
    let edit = insert_entry(&file, &file.sections[0], "group", "www-data");
    assert_eq!(
        apply(text, edit),
        "[www]\nuser = www-data\ngroup = www-data"
    );
}

#[test]
fn unrecognised_line_is_a_syntax_error_with_position() {
    let err = parse(
        Path::new("www.conf"),
        "[www]\nuser = x\n   listen /run/php.sock\n",
    );
    match err {
        Err(ConfError::Syntax { line, col, .. }) => assert_eq!((line, col), (3, 4)),
        other => panic!("expected Syntax, got {other:?}"),
    }
    assert!(parse(Path::new("www.conf"), "[www\n").is_err());
    assert!(parse(Path::new("www.conf"), "[]\n").is_err());
    assert!(parse(Path::new("www.conf"), " = 1\n").is_err());
    assert!(parse(Path::new("www.conf"), "a = \"open\n").is_err());
}

#[test]
fn load_follows_include_globs_and_merges_pools_in_order() {
    let dir = TempDir::new("fpm-include");
    let main = dir.write(
        "php-fpm.conf",
        "[global]\npid = /run/php/php8.2-fpm.pid\ninclude=pool.d/*.conf\n",
    );
    dir.write("pool.d/www.conf", WWW);
    dir.write("pool.d/api.conf", "[api]\nlisten = 127.0.0.1:9001\n");
    dir.write("pool.d/zz-override.conf", "[www]\npm.max_children = 40\n");
    dir.write("pool.d/www.conf.dpkg-dist", "not ini at all\n");
    let config = match load(&main) {
        Ok(config) => config,
        Err(e) => panic!("load failed: {e}"),
    };
    assert_eq!(config.files.len(), 4);
    let pools = config.pools();
    let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["api", "www"]);
    let www = &pools[1];
    assert_eq!(www.file.path, dir.0.join("pool.d/www.conf"));
    let winner = www
        .locate("pm.max_children")
        .map(|(f, e)| (f.path.clone(), e.value.clone()));
    assert_eq!(
        winner,
        Some((dir.0.join("pool.d/zz-override.conf"), "40".to_string()))
    );
    let pid = config.global("pid").map(|(f, e)| (f.path.clone(), e.line));
    assert_eq!(pid, Some((main.clone(), 2)));
}

#[test]
fn missing_literal_include_names_the_path() {
    let dir = TempDir::new("fpm-missing");
    let main = dir.write(
        "php-fpm.conf",
        "[global]\ninclude = /nonexistent/salve/www.conf\n",
    );
    match load(&main) {
        Err(ConfError::Io { path, .. }) => {
            assert_eq!(path, Path::new("/nonexistent/salve/www.conf"))
        }
        other => panic!("expected Io, got {other:?}"),
    }
}
