//! nginx's tokenizer, following `ngx_conf_read_token` in src/core/ngx_conf_file.c so
//! that salve splits a file exactly where nginx does.

use std::ops::Range;

#[derive(Debug, PartialEq, Eq)]
pub(super) enum TokenKind {
    /// A name or argument, already unescaped.
    Word(String),
    Semicolon,
    Open,
    Close,
}

#[derive(Debug)]
pub(super) struct Token {
    pub kind: TokenKind,
    /// Raw bytes of the token, quotes included.
    pub span: Range<usize>,
}

#[derive(Debug)]
pub(super) struct LexError {
    pub offset: usize,
    pub message: String,
}

pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, LexError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let kind = match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            // `#` starts a comment only where a token could start; inside a word
            // (`a#b`) it is an ordinary character.
            b'#' => {
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            b';' => TokenKind::Semicolon,
            b'{' => TokenKind::Open,
            b'}' => TokenKind::Close,
            quote @ (b'"' | b'\'') => {
                i = scan_quoted(bytes, start, quote)?;
                check_after_quote(text, i)?;
                tokens.push(Token {
                    kind: TokenKind::Word(unescape(&text[start + 1..i - 1])),
                    span: start..i,
                });
                continue;
            }
            _ => {
                i = scan_unquoted(bytes, start);
                tokens.push(Token {
                    kind: TokenKind::Word(unescape(&text[start..i])),
                    span: start..i,
                });
                continue;
            }
        };
        i += 1;
        tokens.push(Token {
            kind,
            span: start..i,
        });
    }
    Ok(tokens)
}

/// End (exclusive) of the quoted word opening at `start`; a backslash hides the next
/// byte, so `"a\"b"` is one word.
fn scan_quoted(bytes: &[u8], start: usize, quote: u8) -> Result<usize, LexError> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(LexError {
        offset: start,
        message: format!(
            "unterminated quoted string: add the closing {} for the quote opened here",
            quote as char
        ),
    })
}

/// nginx insists on a separator after a closing quote (`"a"b` is an error), except
/// `)` so that `if ($a = "b")` works.
fn check_after_quote(text: &str, i: usize) -> Result<(), LexError> {
    match text[i..].chars().next() {
        None | Some(' ' | '\t' | '\r' | '\n' | ';' | '{' | ')') => Ok(()),
        Some(c) => Err(LexError {
            offset: i,
            message: format!("unexpected \"{c}\" after a quoted string: add a space before it"),
        }),
    }
}

/// End (exclusive) of the unquoted word starting at `start`. Only whitespace, `;` and
/// `{` end it: `}` and `#` inside a word are literal, a backslash hides the next byte,
/// and a `{` right after `$` belongs to a `${var}` reference, not a block.
fn scan_unquoted(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    let mut after_dollar = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'{' && after_dollar {
            i += 1;
            continue;
        }
        after_dollar = false;
        match b {
            b'\\' => i = (i + 2).min(bytes.len()),
            b'$' => {
                after_dollar = true;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{' => return i,
            _ => i += 1,
        }
    }
    i
}

/// nginx unescapes `\"`, `\'`, `\\`, `\t`, `\r`, `\n` in every word, quoted or not;
/// any other backslash stays, which is why `\.php$` reaches PCRE intact.
pub(super) fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let replaced = match chars.peek() {
                Some(&e @ ('"' | '\'' | '\\')) => Some(e),
                Some('t') => Some('\t'),
                Some('r') => Some('\r'),
                Some('n') => Some('\n'),
                _ => None,
            };
            if let Some(r) = replaced {
                chars.next();
                out.push(r);
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        tokenize(text)
            .map(|tokens| {
                tokens
                    .into_iter()
                    .map(|t| match t.kind {
                        TokenKind::Word(w) => w,
                        TokenKind::Semicolon => ";".to_string(),
                        TokenKind::Open => "{".to_string(),
                        TokenKind::Close => "}".to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn regex_location_is_plain_words() {
        assert_eq!(
            words(r"location ~* \.(jpg|png)$ {"),
            ["location", "~*", r"\.(jpg|png)$", "{"]
        );
    }

    #[test]
    fn dollar_brace_stays_in_the_word() {
        assert_eq!(words("set $a ${host}x;"), ["set", "$a", "${host}x", ";"]);
    }

    #[test]
    fn hash_and_brace_inside_a_word_are_literal() {
        assert_eq!(words("a b#c d} # tail\n;"), ["a", "b#c", "d}", ";"]);
    }

    #[test]
    fn quotes_are_removed_and_escapes_resolved() {
        assert_eq!(
            words(r#"x "a b" 'c\'d' "e\"f" "g\.h";"#),
            ["x", "a b", "c'd", "e\"f", r"g\.h", ";"]
        );
    }

    #[test]
    fn quoted_word_needs_a_separator_after_it() {
        assert!(tokenize(r#"x "a"b;"#).is_err());
        assert_eq!(
            words(r#"if ($a = "b") {"#),
            ["if", "($a", "=", "b", ")", "{"]
        );
    }
}
