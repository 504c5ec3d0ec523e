//! nginx configuration: a lossless parse tree with byte spans, the include graph, and
//! edits that touch only the bytes they mean to change.

mod edit;
mod lexer;
mod load;
mod parser;
pub mod upstream;

use std::ops::Range;
use std::path::PathBuf;

pub use edit::{insert_directive, replace_args};
pub use load::{load, Located, NginxConfig};
pub use parser::parse;

/// One parsed nginx file with the text its spans point into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxFile {
    pub path: PathBuf,
    pub text: String,
    pub directives: Vec<Directive>,
}

/// `name args... ;` or `name args... { children }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    /// Values as nginx sees them: quotes removed, escapes resolved.
    pub args: Vec<String>,
    /// 1-based line and byte column of the name.
    pub line: u32,
    pub col: u32,
    /// From the name through the terminating `;`, or through the closing `}`.
    pub span: Range<usize>,
    /// From the first argument's first byte (quote included) to the last argument's
    /// last byte; `None` without arguments.
    pub args_span: Option<Range<usize>>,
    /// Just after the name: where arguments go when there are none.
    pub name_end: usize,
    pub block: Option<Block>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Offset of `{`.
    pub open: usize,
    /// Offset of the matching `}`.
    pub close: usize,
    pub children: Vec<Directive>,
}

impl Directive {
    /// The head as nginx users write it, arguments joined by single spaces:
    /// "http", "location ~ \.php$", "upstream php".
    pub fn head(&self) -> String {
        let mut head = self.name.clone();
        for arg in &self.args {
            head.push(' ');
            head.push_str(arg);
        }
        head
    }
}

/// Blocks of `file` whose head matches `context` ignoring differences in whitespace
/// ("location  ~ \.php$" finds `location ~ \.php$ {`), at any depth of that one file.
pub fn find_blocks<'a>(file: &'a NginxFile, context: &str) -> Vec<&'a Directive> {
    let wanted = normalize(context);
    let mut found = Vec::new();
    collect_blocks(&file.directives, &wanted, &mut found);
    found
}

fn collect_blocks<'a>(directives: &'a [Directive], wanted: &str, found: &mut Vec<&'a Directive>) {
    for directive in directives {
        if let Some(block) = &directive.block {
            if normalize(&directive.head()) == wanted {
                found.push(directive);
            }
            collect_blocks(&block.children, wanted, found);
        }
    }
}

fn normalize(head: &str) -> String {
    head.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod parse_tests;

#[cfg(test)]
#[path = "edit_tests.rs"]
mod edit_tests;

#[cfg(test)]
#[path = "load_tests.rs"]
mod load_tests;
