//! Builds the directive tree from tokens, keeping every span.

use std::ops::Range;
use std::path::Path;

use super::lexer::{self, TokenKind};
use super::{Block, Directive, NginxFile};
use crate::text::LineIndex;
use crate::ConfError;

/// Blocks nested deeper than this are refused. Real configs nest a handful of levels
/// (http, server, location, if); every walk over the tree, and dropping it, recurses
/// once per level, so a hostile file nested 200,000 deep would overflow the stack.
pub const MAX_BLOCK_DEPTH: usize = 64;

/// Parses one nginx file. Unbalanced braces, a directive without its `;` and an
/// unterminated quote are `ConfError::Syntax` at the offending position.
pub fn parse(path: &Path, text: &str) -> Result<NginxFile, ConfError> {
    let index = LineIndex::new(text);
    let syntax = |offset: usize, message: String| {
        let (line, col) = index.line_col(offset);
        ConfError::Syntax {
            path: path.to_path_buf(),
            line,
            col,
            message,
        }
    };
    let tokens = lexer::tokenize(text).map_err(|e| syntax(e.offset, e.message))?;

    let mut top: Vec<Directive> = Vec::new();
    let mut open_blocks: Vec<(Pending, usize, Vec<Directive>)> = Vec::new();
    let mut pending: Option<Pending> = None;
    for token in tokens {
        let at = token.span.start;
        match token.kind {
            TokenKind::Word(word) => match &mut pending {
                Some(p) => p.push_arg(word, token.span),
                None => pending = Some(Pending::new(word, token.span)),
            },
            TokenKind::Semicolon => {
                let p = pending.take().ok_or_else(|| {
                    syntax(
                        at,
                        "unexpected \";\": there is no directive before it".into(),
                    )
                })?;
                let directive = p.finish(token.span.end, None, &index);
                match open_blocks.last_mut() {
                    Some((_, _, children)) => children.push(directive),
                    None => top.push(directive),
                }
            }
            TokenKind::Open => {
                let p = pending.take().ok_or_else(|| {
                    syntax(
                        at,
                        "unexpected \"{\": a block needs a name before it".into(),
                    )
                })?;
                if open_blocks.len() >= MAX_BLOCK_DEPTH {
                    return Err(syntax(
                        at,
                        format!(
                            "blocks are nested more than {MAX_BLOCK_DEPTH} levels deep; salve refuses to read further"
                        ),
                    ));
                }
                open_blocks.push((p, at, Vec::new()));
            }
            TokenKind::Close => {
                if let Some(p) = pending {
                    return Err(syntax(p.last_end, p.unterminated()));
                }
                let (head, open, children) = open_blocks
                    .pop()
                    .ok_or_else(|| syntax(at, "unexpected \"}\": no block is open here".into()))?;
                let block = Block {
                    open,
                    close: at,
                    children,
                };
                let directive = head.finish(token.span.end, Some(block), &index);
                match open_blocks.last_mut() {
                    Some((_, _, children)) => children.push(directive),
                    None => top.push(directive),
                }
            }
        }
    }
    if let Some(p) = pending {
        return Err(syntax(p.last_end, p.unterminated()));
    }
    if let Some((head, open, _)) = open_blocks.last() {
        let message = format!(
            "unexpected end of file: block \"{}\" opened here has no closing \"}}\"",
            head.head()
        );
        return Err(syntax(*open, message));
    }
    Ok(NginxFile {
        path: path.to_path_buf(),
        text: text.to_string(),
        directives: top,
    })
}

/// A directive whose `;` or `{` has not been seen yet.
struct Pending {
    name: String,
    name_span: Range<usize>,
    args: Vec<String>,
    args_span: Option<Range<usize>>,
    last_end: usize,
}

impl Pending {
    fn new(name: String, span: Range<usize>) -> Self {
        Self {
            name,
            last_end: span.end,
            name_span: span,
            args: Vec::new(),
            args_span: None,
        }
    }

    fn push_arg(&mut self, arg: String, span: Range<usize>) {
        self.args.push(arg);
        self.last_end = span.end;
        let start = self.args_span.as_ref().map_or(span.start, |s| s.start);
        self.args_span = Some(start..span.end);
    }

    fn head(&self) -> String {
        std::iter::once(self.name.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn unterminated(&self) -> String {
        format!(
            "directive \"{}\" is not terminated by \";\": add it here",
            self.name
        )
    }

    fn finish(self, end: usize, block: Option<Block>, index: &LineIndex) -> Directive {
        let (line, col) = index.line_col(self.name_span.start);
        Directive {
            name: self.name,
            args: self.args,
            line,
            col,
            span: self.name_span.start..end,
            args_span: self.args_span,
            name_end: self.name_span.end,
            block,
        }
    }
}
