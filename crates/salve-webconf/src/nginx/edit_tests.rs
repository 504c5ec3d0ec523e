use std::path::Path;

use super::parse_tests::DEBIAN;
use super::*;
use crate::{apply_edits, Edit};

fn parse_ok(text: &str) -> NginxFile {
    match parse(Path::new("/etc/nginx/sites-enabled/default"), text) {
        Ok(file) => file,
        Err(e) => panic!("parse failed: {e}"),
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn apply(text: &str, edit: Edit) -> String {
    match apply_edits(text, &[edit]) {
        Ok(out) => out,
        Err(e) => panic!("edit failed: {e}"),
    }
}

fn first_child<'a>(file: &'a NginxFile, context: &str, name: &str) -> &'a Directive {
    let block = find_blocks(file, context)[0].block.as_ref();
    match block.and_then(|b| b.children.iter().find(|d| d.name == name)) {
        Some(d) => d,
        None => panic!("no {name} in {context}"),
    }
}

#[test]
fn replace_args_changes_only_the_args_and_keeps_the_comment() {
    let file = parse_ok(DEBIAN);
    let buffers = first_child(&file, "location ~ \\.php$", "fastcgi_buffers");
    let out = apply(DEBIAN, replace_args(buffers, &args(&["16", "16k"])));
    let expected = DEBIAN.replace(
        "fastcgi_buffers 8 4k; # raised by hand once",
        "fastcgi_buffers 16 16k; # raised by hand once",
    );
    assert_eq!(out, expected);
    let changed: Vec<_> = out
        .lines()
        .zip(DEBIAN.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1);
}

#[test]
fn replace_args_keeps_crlf_and_odd_spacing() {
    let text = "fastcgi_buffers   8    4k  ;\r\nfastcgi_buffer_size 4k;\r\n";
    let file = parse_ok(text);
    let out = apply(
        text,
        replace_args(&file.directives[0], &args(&["8", "16k"])),
    );
    assert_eq!(
        out,
        "fastcgi_buffers   8 16k  ;\r\nfastcgi_buffer_size 4k;\r\n"
    );
}

#[test]
fn replace_args_quotes_only_values_that_need_it() {
    let text = "add_header X-A b;\n";
    let file = parse_ok(text);
    let edit = replace_args(&file.directives[0], &args(&["X-A", "a b;c", "\\.php$"]));
    assert_eq!(apply(text, edit), "add_header X-A \"a b;c\" \\.php$;\n");
}

#[test]
fn replace_args_adds_args_to_a_bare_directive_and_can_remove_them() {
    let text = "multi_accept;\nsendfile on;\n";
    let file = parse_ok(text);
    let added = apply(text, replace_args(&file.directives[0], &args(&["on"])));
    assert_eq!(added, "multi_accept on;\nsendfile on;\n");
    let removed = apply(text, replace_args(&file.directives[1], &[]));
    assert_eq!(removed, "multi_accept;\nsendfile;\n");
}

#[test]
fn insert_directive_goes_first_with_the_childrens_indentation() {
    let text = "server {\n    location ~ \\.php$ {\n        # php-fpm\n        fastcgi_pass php;\n    }\n}\n";
    let file = parse_ok(text);
    let php = find_blocks(&file, "location ~ \\.php$")[0];
    let edit = insert_directive(&file, php, "fastcgi_buffers", &args(&["16", "16k"]));
    assert_eq!(
        apply(text, edit),
        "server {\n    location ~ \\.php$ {\n        fastcgi_buffers 16 16k;\n        # php-fpm\n        fastcgi_pass php;\n    }\n}\n"
    );
}

#[test]
fn insert_directive_uses_tabs_and_crlf_of_the_file() {
    let text = DEBIAN.replace('\n', "\r\n");
    let file = parse_ok(&text);
    let php = find_blocks(&file, "location ~ \\.php$")[0];
    let edit = insert_directive(&file, php, "fastcgi_buffer_size", &args(&["16k"]));
    let expected = text.replace(
        "location ~ \\.php$ {\r\n",
        "location ~ \\.php$ {\r\n\t\t\tfastcgi_buffer_size 16k;\r\n",
    );
    assert_eq!(apply(&text, edit), expected);
}

#[test]
fn insert_directive_opens_up_an_empty_one_line_block() {
    let text = "server {\n    location / { }\n}\n";
    let file = parse_ok(text);
    let root = find_blocks(&file, "location /")[0];
    let edit = insert_directive(&file, root, "return", &args(&["404"]));
    assert_eq!(
        apply(text, edit),
        "server {\n    location / {\n        return 404;\n    }\n}\n"
    );
    let tight = "location / {}\n";
    let file = parse_ok(tight);
    let edit = insert_directive(&file, &file.directives[0], "return", &args(&["404"]));
    assert_eq!(apply(tight, edit), "location / {\n    return 404;\n}\n");
}

#[test]
fn insert_directive_into_a_one_line_block_with_children() {
    let text = "location ~* \\.(jpg|png)$ { expires 30d; }\n";
    let file = parse_ok(text);
    let edit = insert_directive(&file, &file.directives[0], "access_log", &args(&["off"]));
    assert_eq!(
        apply(text, edit),
        "location ~* \\.(jpg|png)$ {\n    access_log off;\n    expires 30d; }\n"
    );
}

#[test]
fn insert_directive_into_an_empty_multi_line_block_indents_one_level() {
    let text = "http {\n  server { # default\n  }\n}\n";
    let file = parse_ok(text);
    let server = find_blocks(&file, "server")[0];
    let edit = insert_directive(&file, server, "listen", &args(&["80"]));
    assert_eq!(
        apply(text, edit),
        "http {\n  server { # default\n      listen 80;\n  }\n}\n"
    );
}

#[test]
fn edited_text_parses_again() {
    let file = parse_ok(DEBIAN);
    let php = find_blocks(&file, "location ~ \\.php$")[0];
    let buffers = first_child(&file, "location ~ \\.php$", "fastcgi_buffers");
    let edits = [
        insert_directive(&file, php, "fastcgi_buffer_size", &args(&["16k"])),
        replace_args(buffers, &args(&["16", "16k"])),
    ];
    let out = apply_edits(DEBIAN, &edits).unwrap_or_default();
    let again = parse_ok(&out);
    let names: Vec<String> = find_blocks(&again, "location ~ \\.php$")[0]
        .block
        .as_ref()
        .map(|b| b.children.iter().map(|d| d.name.clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "fastcgi_buffer_size",
            "include",
            "fastcgi_pass",
            "fastcgi_buffers"
        ]
    );
}
