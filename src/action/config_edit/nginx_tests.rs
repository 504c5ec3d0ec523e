use super::*;
use crate::policy::{ApplyWith, RaiseDirective, SetDirective};
use std::path::PathBuf;

const SITE: &str = "server {\n    listen 80;\n    fastcgi_buffers 16 4k;   # tuned in 2019\n\n    location ~ \\.php$ {\n        fastcgi_pass unix:/run/php/php8.2-fpm.sock;\n        include fastcgi_params;\n    }\n}\n";

fn args(raise: Vec<RaiseDirective>, set: Vec<SetDirective>) -> NginxEditArgs {
    NginxEditArgs {
        file: PathBuf::from("/etc/nginx/sites-enabled/app"),
        context: "location  ~ \\.php$".into(),
        raise,
        set,
        config: PathBuf::from("/etc/nginx/nginx.conf"),
        unit: None,
        apply: ApplyWith::Reload,
    }
}

fn raise(directive: &str, max: u64) -> RaiseDirective {
    RaiseDirective {
        directive: directive.into(),
        factor: 2.0,
        max,
    }
}

#[test]
fn raising_buffers_inserts_the_default_and_the_inherited_value_doubled() {
    let a = args(
        vec![
            raise("fastcgi_buffer_size", 64 * 1024),
            raise("fastcgi_buffers", 64 * 1024),
        ],
        Vec::new(),
    );
    let planned = NginxPlanner::new(&a).next(SITE).unwrap().unwrap();
    let expected = SITE.replace(
        "    location ~ \\.php$ {\n",
        "    location ~ \\.php$ {\n        fastcgi_buffer_size 8k;\n        fastcgi_buffers 16 8k;\n",
    );
    assert_eq!(planned.text, expected);
    assert!(
        planned.summary.contains("fastcgi_buffer_size 4k -> 8k")
            && planned.summary.contains("fastcgi_buffers 16 4k -> 16 8k"),
        "{}",
        planned.summary
    );
}

#[test]
fn a_second_step_edits_the_inserted_lines_in_place() {
    let a = args(vec![raise("fastcgi_buffer_size", 64 * 1024)], Vec::new());
    let mut planner = NginxPlanner::new(&a);
    let first = planner.next(SITE).unwrap().unwrap();
    let second = planner.next(&first.text).unwrap().unwrap();
    assert_eq!(
        second.text,
        SITE.replace(
            "    location ~ \\.php$ {\n",
            "    location ~ \\.php$ {\n        fastcgi_buffer_size 16k;\n"
        )
    );
}

#[test]
fn at_the_cap_there_is_no_further_step() {
    let a = args(vec![raise("fastcgi_buffer_size", 8 * 1024)], Vec::new());
    let mut planner = NginxPlanner::new(&a);
    let first = planner.next(SITE).unwrap().unwrap();
    assert!(first.text.contains("fastcgi_buffer_size 8k;"));
    assert_eq!(planner.next(&first.text).unwrap(), None);
}

#[test]
fn set_replaces_only_the_arguments_and_keeps_the_comment() {
    let mut a = args(
        Vec::new(),
        vec![SetDirective {
            directive: "fastcgi_buffers".into(),
            value: "32 8k".into(),
        }],
    );
    a.context = "server".into();
    let planned = NginxPlanner::new(&a).next(SITE).unwrap().unwrap();
    assert_eq!(
        planned.text,
        SITE.replace(
            "fastcgi_buffers 16 4k;   # tuned",
            "fastcgi_buffers 32 8k;   # tuned"
        )
    );
}

#[test]
fn a_missing_context_is_an_error_naming_it() {
    let mut a = args(vec![raise("fastcgi_buffer_size", 65536)], Vec::new());
    a.context = "location /api".into();
    let err = NginxPlanner::new(&a).next(SITE).unwrap_err();
    assert_eq!(
        err,
        "no `location /api` block in /etc/nginx/sites-enabled/app"
    );
}

#[test]
fn a_value_set_at_http_level_in_another_file_is_raised_from_not_lowered_to_the_default() {
    let a = args(
        vec![RaiseDirective {
            directive: "fastcgi_read_timeout".into(),
            factor: 2.0,
            max: 600_000,
        }],
        Vec::new(),
    );
    let mut planner = NginxPlanner::new(&a);
    planner
        .outer
        .insert("fastcgi_read_timeout".into(), vec!["300s".into()]);
    let planned = planner.next(SITE).unwrap().unwrap();
    assert!(
        planned.text.contains("fastcgi_read_timeout 10m;"),
        "{}",
        planned.text
    );
}

#[test]
fn setting_a_header_replaces_only_the_header_with_that_name() {
    let site = "server {\n    add_header Strict-Transport-Security max-age=63072000;\n    add_header X-Frame-Options DENY;\n}\n";
    let mut a = args(
        Vec::new(),
        vec![SetDirective {
            directive: "add_header".into(),
            value: "X-Frame-Options SAMEORIGIN".into(),
        }],
    );
    a.context = "server".into();
    let planned = NginxPlanner::new(&a).next(site).unwrap().unwrap();
    assert_eq!(
        planned.text,
        site.replace("X-Frame-Options DENY", "X-Frame-Options SAMEORIGIN")
    );
}

#[test]
fn settings_still_apply_when_every_raise_is_at_its_cap() {
    let a = args(
        vec![raise("fastcgi_buffer_size", 4096)],
        vec![SetDirective {
            directive: "fastcgi_read_timeout".into(),
            value: "30s".into(),
        }],
    );
    let mut planner = NginxPlanner::new(&a);
    let planned = planner.next(SITE).unwrap().unwrap();
    assert!(
        planned.text.contains("fastcgi_read_timeout 30s;"),
        "{}",
        planned.text
    );
    assert_eq!(planner.next(&planned.text).unwrap(), None);
}

#[test]
fn two_new_directives_fit_into_a_one_line_block() {
    let site =
        "server {\n    location ~ \\.php$ { fastcgi_pass unix:/run/php/php8.2-fpm.sock; }\n}\n";
    let a = args(
        vec![
            raise("fastcgi_buffer_size", 64 * 1024),
            raise("fastcgi_buffers", 64 * 1024),
        ],
        Vec::new(),
    );
    let planned = NginxPlanner::new(&a).next(site).unwrap().unwrap();
    let reparsed = crate::webconf::nginx::parse(std::path::Path::new("x"), &planned.text).unwrap();
    let location = &reparsed.directives[0].block.as_ref().unwrap().children[0];
    let names: Vec<&str> = location
        .block
        .as_ref()
        .unwrap()
        .children
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["fastcgi_buffer_size", "fastcgi_buffers", "fastcgi_pass"],
        "{}",
        planned.text
    );
}
