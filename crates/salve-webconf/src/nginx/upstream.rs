//! One server of an nginx `upstream` block, weighed or taken out: nginx open source
//! has no runtime API, so draining a server is an edit of its `server ADDRESS
//! [weight=N] [down] ...;` line, every other byte left as it was.

use super::edit::replace_args;
use super::{find_blocks, Directive, NginxFile};
use crate::apply_edits;

/// What to do to the server's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerChange {
    /// `down`: no requests go to it.
    Down,
    /// Without `down`, at this weight (`weight=1` is nginx's default and is written
    /// out only when the line had a weight already).
    Weight(u32),
}

/// The server's state as its line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLine {
    pub weight: u32,
    pub down: bool,
}

impl std::fmt::Display for ServerLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.down {
            write!(f, "down, weight {}", self.weight)
        } else {
            write!(f, "weight {}", self.weight)
        }
    }
}

fn upstream_block<'a>(file: &'a NginxFile, upstream: &str) -> Result<&'a Directive, String> {
    let blocks = find_blocks(file, &format!("upstream {upstream}"));
    let block = match blocks.as_slice() {
        [one] => one,
        [] => {
            return Err(format!(
                "no `upstream {upstream}` block in {}",
                file.path.display()
            ))
        }
        _ => {
            return Err(format!(
                "{} has {} `upstream {upstream}` blocks; salve edits one it can tell apart",
                file.path.display(),
                blocks.len()
            ))
        }
    };
    Ok(block)
}

fn server_lines(block: &Directive) -> impl Iterator<Item = &Directive> {
    let children = block.block.as_ref().map_or(&[][..], |b| &b.children[..]);
    children
        .iter()
        .filter(|d| d.name == "server" && !d.args.is_empty())
}

fn server_line<'a>(
    file: &'a NginxFile,
    upstream: &str,
    address: &str,
) -> Result<&'a Directive, String> {
    let block = upstream_block(file, upstream)?;
    let children = block.block.as_ref().map_or(&[][..], |b| &b.children[..]);
    let servers: Vec<&Directive> = children
        .iter()
        .filter(|d| d.name == "server" && d.args.first().is_some_and(|a| a == address))
        .collect();
    match servers.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "`upstream {upstream}` in {} has no `server {address}`",
            file.path.display()
        )),
        _ => Err(format!(
            "`upstream {upstream}` in {} lists `server {address}` {} times",
            file.path.display(),
            servers.len()
        )),
    }
}

/// What the server's line says now.
pub fn read_server(file: &NginxFile, upstream: &str, address: &str) -> Result<ServerLine, String> {
    let line = server_line(file, upstream, address)?;
    state_of(line)
}

/// Every server of the upstream, by address as written, with its state: what a drain
/// checks so that it never takes the last one that takes requests.
pub fn upstream_servers(
    file: &NginxFile,
    upstream: &str,
) -> Result<Vec<(String, ServerLine)>, String> {
    let block = upstream_block(file, upstream)?;
    server_lines(block)
        .map(|line| Ok((line.args[0].clone(), state_of(line)?)))
        .collect()
}

fn state_of(line: &Directive) -> Result<ServerLine, String> {
    let mut state = ServerLine {
        weight: 1,
        down: false,
    };
    for arg in &line.args[1..] {
        if let Some(w) = arg.strip_prefix("weight=") {
            state.weight = w
                .parse()
                .map_err(|_| format!("`{arg}` in `server {}` is not a weight", line.args[0]))?;
        } else if arg == "down" {
            state.down = true;
        }
    }
    Ok(state)
}

/// The file's text with the server's line changed, and the state before and after; or
/// why it cannot be (no such block, no such server, or one of them twice).
pub fn change_server(
    file: &NginxFile,
    upstream: &str,
    address: &str,
    change: ServerChange,
) -> Result<(String, ServerLine, ServerLine), String> {
    let line = server_line(file, upstream, address)?;
    let before = state_of(line)?;
    let mut args: Vec<String> = Vec::with_capacity(line.args.len() + 1);
    args.push(line.args[0].clone());
    let had_weight = line.args.iter().any(|a| a.starts_with("weight="));
    for arg in &line.args[1..] {
        if arg == "down" || arg.starts_with("weight=") {
            continue;
        }
        args.push(arg.clone());
    }
    let after = match change {
        ServerChange::Down => {
            if had_weight {
                args.insert(1, format!("weight={}", before.weight));
            }
            args.push("down".to_string());
            ServerLine {
                weight: before.weight,
                down: true,
            }
        }
        ServerChange::Weight(weight) => {
            if had_weight || weight != 1 {
                args.insert(1, format!("weight={weight}"));
            }
            ServerLine {
                weight,
                down: false,
            }
        }
    };
    let edit = replace_args(line, &args);
    let text = apply_edits(&file.text, &[edit]).map_err(|e| e.to_string())?;
    Ok((text, before, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::parser::parse;
    use std::path::Path;

    const SITE: &str = "# the pools behind this site\r\nupstream php {\r\n    server 10.0.0.1:9000 weight=5 max_fails=2;  # node a\r\n    server 10.0.0.2:9000;\r\n    server 10.0.0.3:9000 backup;\r\n}\r\nserver {\r\n    listen 80;\r\n}\r\n";

    fn file() -> NginxFile {
        parse(Path::new("/etc/nginx/conf.d/php.conf"), SITE).unwrap()
    }

    #[test]
    fn a_server_is_taken_down_and_weighed_back_byte_for_byte() {
        let (down, before, after) =
            change_server(&file(), "php", "10.0.0.1:9000", ServerChange::Down).unwrap();
        assert_eq!(before.to_string(), "weight 5");
        assert_eq!(after.to_string(), "down, weight 5");
        assert_eq!(
            down,
            SITE.replace(
                "server 10.0.0.1:9000 weight=5 max_fails=2;",
                "server 10.0.0.1:9000 weight=5 max_fails=2 down;"
            )
        );
        let downed = parse(Path::new("/x"), &down).unwrap();
        let (back, _, after) =
            change_server(&downed, "php", "10.0.0.1:9000", ServerChange::Weight(5)).unwrap();
        assert_eq!(back, SITE, "the original bytes, CRLF and comment included");
        assert!(!after.down);
        // A server without a weight gets one only when it is not nginx's default.
        let (half, _, _) =
            change_server(&file(), "php", "10.0.0.2:9000", ServerChange::Weight(1)).unwrap();
        assert_eq!(half, SITE);
        let (two, _, _) =
            change_server(&file(), "php", "10.0.0.2:9000", ServerChange::Weight(2)).unwrap();
        assert!(
            two.contains("    server 10.0.0.2:9000 weight=2;\r\n"),
            "{two}"
        );
    }

    #[test]
    fn every_server_of_the_upstream_is_listed_with_its_state() {
        let listed = upstream_servers(&file(), "php").unwrap();
        let seen: Vec<String> = listed.iter().map(|(a, s)| format!("{a}: {s}")).collect();
        assert_eq!(
            seen,
            [
                "10.0.0.1:9000: weight 5",
                "10.0.0.2:9000: weight 1",
                "10.0.0.3:9000: weight 1"
            ]
        );
    }

    #[test]
    fn a_missing_block_or_server_is_a_clear_error() {
        let f = file();
        assert_eq!(
            change_server(&f, "api", "10.0.0.1:9000", ServerChange::Down).unwrap_err(),
            "no `upstream api` block in /etc/nginx/conf.d/php.conf"
        );
        assert_eq!(
            change_server(&f, "php", "10.0.0.9:9000", ServerChange::Down).unwrap_err(),
            "`upstream php` in /etc/nginx/conf.d/php.conf has no `server 10.0.0.9:9000`"
        );
        assert_eq!(
            read_server(&f, "php", "10.0.0.1:9000").unwrap(),
            ServerLine {
                weight: 5,
                down: false
            }
        );
    }
}
