//! A cheap pre-scan of a config's nesting depth, before the YAML parser sees it.
//!
//! The reader ([`crate::yaml`]) gives up at 128 levels; libyaml, the parser before it, did so
//! only after scanning the whole nest, in time that grew with the square of its depth (100,000
//! nested `[` took minutes of CPU), and a parser's look-ahead may still scan far. This scan is
//! one linear pass that estimates the depth from block
//! indentation (keys and `- ` items) and flow brackets (outside quotes, comments and block
//! scalars), and stops at the first line past [`MAX_DEPTH`].

/// Deeper than this is refused before parsing. Higher than the reader's own limit (128), so
/// that an estimate that counts a level too many never refuses what the reader accepts, and
/// low enough that what gets through costs the parser milliseconds. Real configs stay under 20.
pub const MAX_DEPTH: usize = 1000;

/// Where the nesting first goes past `max`: (line, column), 1-based, and the depth reached.
pub fn too_deep(text: &str, max: usize) -> Option<((usize, usize), usize)> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut quote: Option<u8> = None;
    // The indentation of the line that opened a block scalar (`|`, `>`): deeper lines are text.
    let mut scalar_of: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let b = line.as_bytes();
        let ind = b.iter().take_while(|&&c| c == b' ').count();
        if let Some(parent) = scalar_of {
            if line.trim().is_empty() || ind > parent {
                continue;
            }
            scalar_of = None;
        }
        let rest = &b[ind..];
        if quote.is_none() && flow == 0 {
            if rest.is_empty() || rest[0] == b'#' {
                continue;
            }
            if rest.starts_with(b"---") || rest.starts_with(b"...") {
                indents.clear();
                continue;
            }
            // The line's own column, then one more for each leading `- ` item indicator.
            let mut col = ind;
            let mut at = 0;
            loop {
                while indents.last().is_some_and(|&t| t > col) {
                    indents.pop();
                }
                if indents.last() != Some(&col) {
                    indents.push(col);
                }
                let after = &rest[at..];
                if after.first() == Some(&b'-')
                    && after.get(1).is_none_or(|c| *c == b' ' || *c == b'\t')
                {
                    let skip = 1 + after[1..]
                        .iter()
                        .take_while(|c| **c == b' ' || **c == b'\t')
                        .count();
                    at += skip;
                    col += skip;
                    if at < rest.len() {
                        continue;
                    }
                }
                break;
            }
        }
        let mut prev = b' '; // the last non-blank byte outside quotes
        let mut j = 0;
        while j < rest.len() {
            let c = rest[j];
            match quote {
                Some(b'\'') => {
                    if c == b'\'' {
                        if rest.get(j + 1) == Some(&b'\'') {
                            j += 1;
                        } else {
                            quote = None;
                        }
                    }
                }
                Some(_) => {
                    if c == b'\\' {
                        j += 1;
                    } else if c == b'"' {
                        quote = None;
                    }
                }
                None => {
                    // Brackets, quotes and block scalars count only where a node starts
                    // (after `: `, `- `, `? `, or `,` and brackets in a flow); inside a plain
                    // scalar these bytes are text.
                    let node_start = if flow > 0 {
                        matches!(prev, b' ' | b'[' | b'{' | b',' | b':' | b'?' | b'-')
                    } else {
                        matches!(prev, b' ' | b':' | b'-' | b'?')
                            && (j == 0 || matches!(rest[j - 1], b' ' | b'\t'))
                    };
                    match c {
                        b'#' if j == 0 || rest[j - 1] == b' ' || rest[j - 1] == b'\t' => break,
                        b'\'' | b'"' if node_start => quote = Some(c),
                        b'[' | b'{' if flow > 0 || node_start => {
                            flow += 1;
                            if indents.len() + flow > max {
                                return Some(((i + 1, ind + j + 1), indents.len() + flow));
                            }
                        }
                        b']' | b'}' if flow > 0 => flow -= 1,
                        b'|' | b'>' if flow == 0 && node_start && is_scalar_header(&rest[j..]) => {
                            scalar_of = Some(ind);
                            break;
                        }
                        _ => {}
                    }
                    if c != b' ' && c != b'\t' {
                        prev = c;
                    }
                }
            }
            j += 1;
        }
        if indents.len() + flow > max {
            return Some(((i + 1, ind + 1), indents.len() + flow));
        }
    }
    None
}

/// `|`, `>`, with optional `-`/`+`/digit modifiers, then nothing but a comment.
fn is_scalar_header(s: &[u8]) -> bool {
    let rest = &s[1..];
    let n = rest
        .iter()
        .take_while(|c| matches!(c, b'-' | b'+' | b'0'..=b'9'))
        .count();
    let tail = std::str::from_utf8(&rest[n..]).unwrap_or("x").trim_start();
    tail.is_empty() || tail.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_configs_are_shallow() {
        let cfg = "storage:\n  version: 1\n  config:\n    - {id: d, type: disk, ptable: gpt}\n    - id: p\n      type: partition\nlate_commands:\n  a: ['sh', '-c', 'echo [ {']\n  b: |\n    [[[[[[[[\n    {{{{\nwrite_files:\n  x: {content: \"[[[[\", path: /a}\n";
        let d = too_deep(cfg, 5);
        assert_eq!(d, None, "{d:?}");
        assert_eq!(too_deep("a: b[0] and c{x\nd: e\n", 1), None);
    }

    #[test]
    fn deep_flow_block_and_dashes_are_found() {
        let flow = format!("a: {}{}\n", "[".repeat(2000), "]".repeat(2000));
        assert_eq!(
            too_deep(&flow, MAX_DEPTH),
            Some(((1, MAX_DEPTH + 3), MAX_DEPTH + 1))
        );
        let block: String = (0..1200)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        assert_eq!(
            too_deep(&block, MAX_DEPTH),
            Some(((MAX_DEPTH + 1, MAX_DEPTH + 1), MAX_DEPTH + 1))
        );
        let dashes = format!("{}x\n", "- ".repeat(1500));
        assert!(too_deep(&dashes, MAX_DEPTH).is_some());
        let json = format!("{}1{}", "{\"a\":".repeat(1500), "}".repeat(1500));
        assert!(too_deep(&json, MAX_DEPTH).is_some());
        assert_eq!(too_deep("a:\n  b:\n    c: 1\n", 3), None);
        assert_eq!(too_deep("a:\n  b:\n    c: [1]\n", 3), Some(((3, 8), 4)));
    }
}
