//! Splitting a command string into argv the way a POSIX shell would (dsari uses Python's
//! `shlex.split`), without running a shell: quotes and backslashes only, no expansion.

/// Splits `line` into words: blanks separate words; `'...'` is literal; `"..."` keeps blanks and
/// lets `\` escape `$`, `` ` ``, `"`, `\` and newline; a `\` outside quotes escapes the next
/// character. `$VAR`, globs and `;` are NOT interpreted: use `shell: true` for that.
pub fn split_shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('$' | '`' | '"' | '\\')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("trailing backslash".into()),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split_shell_words;

    fn split(s: &str) -> Vec<String> {
        split_shell_words(s).unwrap()
    }

    #[test]
    fn blanks_separate_words() {
        assert_eq!(
            split("  ssh   host-a\tbuild_job1 \n"),
            ["ssh", "host-a", "build_job1"]
        );
        assert!(split("   ").is_empty());
    }

    #[test]
    fn quotes_keep_blanks_and_join_adjacent_text() {
        assert_eq!(
            split("echo 'a b' \"c d\" e'f'\"g\""),
            ["echo", "a b", "c d", "efg"]
        );
        assert_eq!(split("printf ''"), ["printf", ""]);
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(split(r#"echo '$HOME \n "x"'"#), ["echo", r#"$HOME \n "x""#]);
    }

    #[test]
    fn backslashes_escape_like_sh() {
        assert_eq!(split(r"a\ b c\\d"), ["a b", r"c\d"]);
        assert_eq!(split(r#""say \"hi\" \$x \n""#), [r#"say "hi" $x \n"#]);
        assert_eq!(split("a \\\nb"), ["a", "b"]);
    }

    #[test]
    fn nothing_is_expanded() {
        assert_eq!(
            split("echo $HOME *.txt; ls"),
            ["echo", "$HOME", "*.txt;", "ls"]
        );
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert_eq!(
            split_shell_words("echo 'x").unwrap_err(),
            "unterminated single quote"
        );
        assert_eq!(
            split_shell_words("echo \"x").unwrap_err(),
            "unterminated double quote"
        );
        assert_eq!(
            split_shell_words("echo x\\").unwrap_err(),
            "trailing backslash"
        );
    }
}
