//! HTTP header value grammar used by the handshake and by extension negotiation.
//!
//! RFC 7230 comma-separated lists (with quoted strings: python wsproto split `p="1,2"` at the
//! comma inside the quotes) and
//! RFC 6455 §9.1 extension items: `name; param; param=value; param="quoted value"`.

/// Splits a comma-separated header value into trimmed items, honouring quoted strings (a comma
/// inside `"..."` does not split). Empty items are dropped.
pub(crate) fn split_comma_list(value: &str) -> Vec<&str> {
    split_outside_quotes(value, b',').filter(|item| !item.is_empty()).collect()
}

/// Whether the comma-separated `value` contains `token`, compared case-insensitively.
pub(crate) fn list_contains_token(value: &str, token: &str) -> bool {
    split_comma_list(value).iter().any(|item| item.eq_ignore_ascii_case(token))
}

/// One parsed extension item: its name and parameters (quoted values unquoted).
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) struct ExtensionItem {
    /// Extension token, as written.
    pub(crate) name: String,
    /// `(name, value)` pairs in order; `None` for a parameter without a value.
    pub(crate) params: Vec<(String, Option<String>)>,
}

impl ExtensionItem {
    /// Parses `name; a; b=1; c="x"`. Returns `None` for a malformed item (empty name or
    /// parameter name, unterminated quote, characters outside the token grammar).
    pub(crate) fn parse(item: &str) -> Option<ExtensionItem> {
        let mut parts = split_outside_quotes(item, b';');
        let name = parts.next()?;
        if !is_token(name) {
            return None;
        }
        let mut params = Vec::new();
        for part in parts {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(unquote(v.trim())?)),
                None => (part, None),
            };
            if !is_token(key) {
                return None;
            }
            if let Some(v) = &value {
                if !is_token(v) {
                    return None;
                }
            }
            params.push((key.to_owned(), value));
        }
        Some(ExtensionItem { name: name.to_owned(), params })
    }
}

/// Whether `s` is a non-empty RFC 7230 token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Removes surrounding quotes and backslash escapes; `None` for an unterminated quote.
fn unquote(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else { return Some(v.to_owned()) };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Splits on `sep` outside double quotes, trimming each piece.
fn split_outside_quotes(value: &str, sep: u8) -> impl Iterator<Item = &str> {
    let bytes = value.as_bytes();
    let mut start = 0;
    let mut pos = 0;
    let mut in_quotes = false;
    let mut finished = false;
    std::iter::from_fn(move || {
        if finished {
            return None;
        }
        while pos < bytes.len() {
            let b = bytes[pos];
            if in_quotes && b == b'\\' {
                pos += 2;
                continue;
            }
            if b == b'"' {
                in_quotes = !in_quotes;
            } else if b == sep && !in_quotes {
                let piece = &value[start..pos];
                pos += 1;
                start = pos;
                return Some(piece.trim());
            }
            pos += 1;
        }
        finished = true;
        Some(value.get(start..).unwrap_or("").trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_lists() {
        assert_eq!(split_comma_list(""), Vec::<&str>::new());
        assert_eq!(split_comma_list("keep-alive, Upgrade"), ["keep-alive", "Upgrade"]);
        assert!(list_contains_token("keep-alive, UPGRADE", "upgrade"));
        assert!(!list_contains_token("upgraded", "upgrade"));
        assert_eq!(split_comma_list(r#"a; x="q\"uo,te", b"#), [r#"a; x="q\"uo,te""#, "b"]);
        assert_eq!(split_comma_list("a, b ,,c"), ["a", "b", "c"]);
        assert_eq!(split_comma_list(r#"x; p="1,2", y"#), [r#"x; p="1,2""#, "y"]);
    }

    #[test]
    fn extension_items() {
        assert_eq!(ExtensionItem::parse("foo").unwrap().params, vec![]);
        let item = ExtensionItem::parse(r#"foo ; a = 1 ; b="x\"y""#);
        assert_eq!(item, None, "a quoted value must still be a token");
        let item = ExtensionItem::parse(r#"foo; a=1; b="12""#).unwrap();
        assert_eq!(item.params, vec![("a".into(), Some("1".into())), ("b".into(), Some("12".into()))]);
        assert_eq!(ExtensionItem::parse(""), None);
        assert_eq!(ExtensionItem::parse("foo; =1"), None);
        assert_eq!(ExtensionItem::parse(r#"foo; a="1"#), None);
        assert_eq!(ExtensionItem::parse("fo o"), None);
        let item = ExtensionItem::parse(
            r#"permessage-deflate; client_max_window_bits; server_max_window_bits="10""#,
        )
        .unwrap();
        assert_eq!(item.name, "permessage-deflate");
        assert_eq!(item.params[0], ("client_max_window_bits".to_string(), None));
        assert_eq!(item.params[1], ("server_max_window_bits".to_string(), Some("10".to_string())));
    }
}
