//! Edits on nginx text that leave every other byte alone.

use super::{Directive, NginxFile};
use crate::text::{line_ending, line_indent, next_line_start};
use crate::Edit;

/// Replaces a directive's arguments with `args`, joined by one space. Comments and
/// whitespace around them, and every other line, stay as they were.
pub fn replace_args(d: &Directive, args: &[String]) -> Edit {
    let rendered = render_args(args);
    match (&d.args_span, args.is_empty()) {
        (Some(span), false) => Edit {
            range: span.clone(),
            replacement: rendered,
        },
        // Dropping all arguments also drops the space that separated them from the
        // name, so `name a;` becomes `name;`, not `name ;`.
        (Some(span), true) => Edit {
            range: d.name_end..span.end,
            replacement: String::new(),
        },
        (None, false) => Edit {
            range: d.name_end..d.name_end,
            replacement: format!(" {rendered}"),
        },
        (None, true) => Edit {
            range: d.name_end..d.name_end,
            replacement: String::new(),
        },
    }
}

/// Inserts `name args;` as the first line inside `block_directive`'s block, indented
/// like its first child (or one level deeper than the block when it has none), with
/// the file's line ending. A block written on one line (`location / { }`) is opened
/// up so the new directive gets a line of its own.
///
/// `block_directive` without a block yields an empty edit at its end, which changes
/// nothing; callers find blocks with `find_blocks`, so that case is a caller bug.
pub fn insert_directive(
    file: &NginxFile,
    block_directive: &Directive,
    name: &str,
    args: &[String],
) -> Edit {
    let Some(block) = &block_directive.block else {
        let end = block_directive.span.end;
        return Edit {
            range: end..end,
            replacement: String::new(),
        };
    };
    let text = file.text.as_str();
    let eol = line_ending(text);
    let statement = if args.is_empty() {
        format!("{name};")
    } else {
        format!("{name} {};", render_args(args))
    };
    let block_indent = line_indent(text, block_directive.span.start);
    let step = if block_indent.ends_with('\t') {
        "\t"
    } else {
        "    "
    };
    let nested_indent = format!("{block_indent}{step}");

    let after_open = block.open + 1;
    let open_line_end = next_line_start(text, after_open);
    let rest_of_open_line = &text[after_open..open_line_end];
    let content = rest_of_open_line.trim_start_matches([' ', '\t', '\r', '\n']);
    let content_at = after_open + (rest_of_open_line.len() - content.len());

    if content.is_empty() || content.starts_with('#') {
        // `{` ends its line (perhaps after a comment): add a whole line below it.
        let indent = match block.children.first() {
            Some(child) if child.span.start >= open_line_end => line_indent(text, child.span.start),
            _ => nested_indent.as_str(),
        };
        return Edit {
            range: open_line_end..open_line_end,
            replacement: format!("{indent}{statement}{eol}"),
        };
    }
    // Something follows `{` on its line: break the line after `{`, replacing only the
    // spaces between `{` and what follows.
    let closing = if content_at == block.close {
        block_indent
    } else {
        nested_indent.as_str()
    };
    Edit {
        range: after_open..content_at,
        replacement: format!("{eol}{nested_indent}{statement}{eol}{closing}"),
    }
}

fn render_args(args: &[String]) -> String {
    args.iter()
        .map(|a| render_arg(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes one value so nginx reads it back unchanged (see `lexer::unescape`).
fn render_arg(arg: &str) -> String {
    let needs_quotes = arg.is_empty()
        || arg
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, ';' | '{' | '}' | '#' | '"' | '\''));
    if needs_quotes {
        let escaped = arg.replace('\\', "\\\\").replace('"', "\\\"");
        return format!("\"{escaped}\"");
    }
    // Unquoted, a backslash is literal unless nginx would read it as an escape, so
    // `\.php$` is written as is and only `\\`, `\t`-like pairs and a trailing `\`
    // (which would swallow the `;`) need doubling.
    let mut out = String::with_capacity(arg.len());
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '\\'
            && matches!(
                chars.peek(),
                None | Some('"' | '\'' | '\\' | 't' | 'r' | 'n')
            )
        {
            out.push('\\');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::lexer::unescape;
    use super::*;

    #[test]
    fn rendered_args_read_back_unchanged() {
        for arg in [
            r"\.php$",
            "a b",
            "",
            r"x\",
            r"a\nb",
            "it's",
            r#"say "hi""#,
            "${host}",
        ] {
            let rendered = render_arg(arg);
            let inner = if rendered.starts_with('"') {
                &rendered[1..rendered.len() - 1]
            } else {
                rendered.as_str()
            };
            assert_eq!(unescape(inner), arg, "rendered as {rendered}");
        }
        assert_eq!(render_arg(r"\.php$"), r"\.php$");
        assert_eq!(render_arg("a b"), "\"a b\"");
    }
}
