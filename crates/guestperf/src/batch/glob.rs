//! `--filter` patterns: shell globs as the original's `fnmatch`, where `*` also matches `/`.
//!
//! `*` any run of characters, `?` one character, `[abc]` `[a-z]` `[!abc]` one of (or none of)
//! a set; everything else matches itself. A pattern selects a scenario when it matches
//! `COMPARISON/SCENARIO`, or the comparison name alone (so `--filter post-copy-iters` selects the
//! whole comparison).

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    Star,
    Set {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

/// A pattern that cannot be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--filter {pattern}: unclosed '[' (write [[] for a literal '[')")]
pub struct GlobError {
    pub pattern: String,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                '[' => {
                    let mut j = i + 1;
                    let negated = matches!(chars.get(j), Some('!') | Some('^'));
                    if negated {
                        j += 1;
                    }
                    let mut items = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(&c) = chars.get(j) else {
                            return Err(GlobError {
                                pattern: pattern.to_string(),
                            });
                        };
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        if chars.get(j + 1) == Some(&'-')
                            && chars.get(j + 2).is_some_and(|&e| e != ']')
                        {
                            items.push((c, chars[j + 2]));
                            j += 3;
                        } else {
                            items.push((c, c));
                            j += 1;
                        }
                    }
                    tokens.push(Token::Set { negated, items });
                    i = j + 1;
                }
                c => {
                    tokens.push(Token::Char(c));
                    i += 1;
                }
            }
        }
        Ok(Glob {
            pattern: pattern.to_string(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        // Iterative matching with single-star backtracking (linear for patterns like ours).
        let (mut p, mut t) = (0, 0);
        let mut backtrack: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::Star) => {
                    backtrack = Some((p, t));
                    p += 1;
                    continue;
                }
                Some(tok) if tok.matches_char(text[t]) => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    backtrack = Some((sp, st + 1));
                }
                None => return false,
            }
        }
        self.tokens[p..].iter().all(|tok| *tok == Token::Star)
    }
}

impl Token {
    fn matches_char(&self, c: char) -> bool {
        match self {
            Token::Char(x) => *x == c,
            Token::Any => true,
            Token::Star => false,
            Token::Set { negated, items } => {
                items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// The `--filter` options: a scenario is selected when any pattern selects it (all are
/// selected when there is none).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    globs: Vec<Glob>,
}

impl Filter {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, GlobError> {
        let globs = patterns
            .iter()
            .map(|p| Glob::new(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Filter { globs })
    }

    pub fn selects(&self, comparison: &str, scenario: &str) -> bool {
        if self.globs.is_empty() {
            return true;
        }
        let path = format!("{comparison}/{scenario}");
        self.globs
            .iter()
            .any(|g| g.matches(&path) || g.matches(comparison))
    }

    pub fn patterns(&self) -> Vec<&str> {
        self.globs.iter().map(Glob::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).unwrap().matches(text)
    }

    #[test]
    fn fnmatch_semantics() {
        assert!(m("*", ""));
        assert!(m("*", "a/b"), "* matches / as in fnmatch");
        assert!(m("post-copy-*/*-1", "post-copy-iters/post-copy-iters-1"));
        assert!(!m("post-copy-*/*-1", "post-copy-iters/post-copy-iters-10"));
        assert!(m("*iters-[01]", "post-copy-iters/post-copy-iters-0"));
        assert!(!m("*iters-[01]", "post-copy-iters/post-copy-iters-5"));
        assert!(m("*-[!0-4]", "x-5"));
        assert!(!m("*-[!0-4]", "x-3"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[]]", "]"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exactly"));
        assert!(m("[a-]", "-"));
    }

    #[test]
    fn unclosed_set_is_an_error() {
        assert_eq!(
            Glob::new("a[bc").unwrap_err().to_string(),
            "--filter a[bc: unclosed '[' (write [[] for a literal '[')"
        );
    }

    #[test]
    fn filter_selects_by_path_or_comparison_name() {
        let f = Filter::new(&["post-copy-iters", "compr-mt/*-1"]).unwrap();
        assert!(f.selects("post-copy-iters", "post-copy-iters-20"));
        assert!(f.selects("compr-mt", "compr-mt-threads-1"));
        assert!(!f.selects("compr-mt", "compr-mt-threads-2"));
        assert!(!f.selects("pause-iters", "pause-iters-1"));
        assert!(Filter::new::<&str>(&[]).unwrap().selects("any", "thing"));
    }
}
