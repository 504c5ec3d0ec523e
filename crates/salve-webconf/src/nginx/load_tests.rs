use std::path::{Path, PathBuf};

use super::*;
use crate::test_support::TempDir;
use crate::ConfError;

fn site(dir: &TempDir) -> PathBuf {
    let main = dir.write(
        "nginx.conf",
        "user www-data;\nhttp {\n    include conf.d/*.conf;\n    server {\n        location ~ \\.php$ {\n            include snippets/php.conf;\n        }\n    }\n}\n",
    );
    dir.write(
        "conf.d/b.conf",
        "server {\n    listen 8080;\n    include snippets/php.conf;\n}\n",
    );
    dir.write("conf.d/a.conf", "server_tokens off;\n");
    dir.write("conf.d/.a.conf.swp", "garbage {\n");
    dir.write("conf.d/notes.txt", "garbage {\n");
    dir.write("snippets/php.conf", "fastcgi_buffers 8 4k;\n");
    main
}

fn load_ok(main: &Path) -> NginxConfig {
    match load(main) {
        Ok(config) => config,
        Err(e) => panic!("load failed: {e}"),
    }
}

#[test]
fn load_follows_relative_glob_includes_in_sorted_order() {
    let dir = TempDir::new("nginx-glob");
    let main = site(&dir);
    let config = load_ok(&main);
    let names: Vec<PathBuf> = config
        .files
        .iter()
        .map(|f| {
            f.path
                .strip_prefix(&dir.0)
                .map(Path::to_path_buf)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        names,
        [
            PathBuf::from("nginx.conf"),
            PathBuf::from("conf.d/a.conf"),
            PathBuf::from("conf.d/b.conf"),
            PathBuf::from("snippets/php.conf"),
        ]
    );
    assert!(config.file(&dir.0.join("conf.d/b.conf")).is_some());
    assert!(config.file(&dir.0.join("conf.d/notes.txt")).is_none());
}

#[test]
fn walk_gives_included_directives_the_contexts_of_the_include_site() {
    let dir = TempDir::new("nginx-walk");
    let main = site(&dir);
    let config = load_ok(&main);
    let walked: Vec<(String, Vec<String>, String)> = config
        .walk()
        .iter()
        .map(|l| {
            let file = l
                .file
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            (
                l.directive.name.clone(),
                l.contexts.clone(),
                file.unwrap_or_default(),
            )
        })
        .collect();
    let ctx = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let expected = [
        ("user", ctx(&[]), "nginx.conf"),
        ("http", ctx(&[]), "nginx.conf"),
        ("include", ctx(&["http"]), "nginx.conf"),
        ("server_tokens", ctx(&["http"]), "a.conf"),
        ("server", ctx(&["http"]), "b.conf"),
        ("listen", ctx(&["http", "server"]), "b.conf"),
        ("include", ctx(&["http", "server"]), "b.conf"),
        ("fastcgi_buffers", ctx(&["http", "server"]), "php.conf"),
        ("server", ctx(&["http"]), "nginx.conf"),
        ("location", ctx(&["http", "server"]), "nginx.conf"),
        (
            "include",
            ctx(&["http", "server", "location ~ \\.php$"]),
            "nginx.conf",
        ),
        (
            "fastcgi_buffers",
            ctx(&["http", "server", "location ~ \\.php$"]),
            "php.conf",
        ),
    ];
    let expected: Vec<(String, Vec<String>, String)> = expected
        .into_iter()
        .map(|(n, c, f)| (n.to_string(), c, f.to_string()))
        .collect();
    assert_eq!(walked, expected);
}

#[test]
fn missing_literal_include_is_an_io_error_naming_the_path() {
    let dir = TempDir::new("nginx-missing");
    let main = dir.write("nginx.conf", "include mime.types;\n");
    match load(&main) {
        Err(ConfError::Io { path, .. }) => assert_eq!(path, dir.0.join("mime.types")),
        other => panic!("expected Io error, got {other:?}"),
    }
}

#[test]
fn glob_matching_nothing_is_fine() {
    let dir = TempDir::new("nginx-empty-glob");
    let main = dir.write("nginx.conf", "include sites-enabled/*;\nuser x;\n");
    assert_eq!(load_ok(&main).files.len(), 1);
}

#[test]
fn absolute_include_is_used_as_is() {
    let dir = TempDir::new("nginx-absolute");
    let other = dir.write("elsewhere/extra.conf", "gzip on;\n");
    let main = dir.write(
        "main/nginx.conf",
        &format!("include {};\n", other.display()),
    );
    assert_eq!(load_ok(&main).files.len(), 2);
}

#[test]
fn include_loop_is_reported() {
    let dir = TempDir::new("nginx-loop");
    let main = dir.write("nginx.conf", "include conf.d/*.conf;\n");
    dir.write("conf.d/self.conf", "include conf.d/self.conf;\n");
    match load(&main) {
        Err(ConfError::IncludeLoop { path }) => assert_eq!(path, dir.0.join("conf.d/self.conf")),
        other => panic!("expected IncludeLoop, got {other:?}"),
    }
}

#[test]
fn syntax_error_in_an_included_file_names_that_file() {
    let dir = TempDir::new("nginx-included-error");
    let main = dir.write("nginx.conf", "include conf.d/*.conf;\n");
    let broken = dir.write("conf.d/broken.conf", "server {\n");
    match load(&main) {
        Err(ConfError::Syntax { path, line, .. }) => assert_eq!((path, line), (broken, 1)),
        other => panic!("expected Syntax, got {other:?}"),
    }
}
