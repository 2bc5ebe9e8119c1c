//! Priorities, shared by config files (the coordinator) and `rota submit --priority` (the CLI,
//! which links no coordinator code): seed 000's `normal`/`high`, dsari-style words, or any integer.

/// `high` = 10, `normal` = 0, `low` = -10, or an integer (`5`, `-3`); larger runs first.
///
/// Shared by config files and `rota submit --priority`, so both spell priorities alike. Words
/// are case-insensitive; the error says what is accepted.
pub fn parse_priority(s: &str) -> Result<i32, String> {
    let text = s.trim();
    match text.to_ascii_lowercase().as_str() {
        "high" => Ok(10),
        "normal" => Ok(0),
        "low" => Ok(-10),
        _ => text.parse::<i32>().map_err(|_| {
            format!("invalid priority \"{s}\" (expected high, normal, low or an integer)")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_priority;

    #[test]
    fn words_map_to_ten_zero_and_minus_ten() {
        assert_eq!(parse_priority("high"), Ok(10));
        assert_eq!(parse_priority("normal"), Ok(0));
        assert_eq!(parse_priority("low"), Ok(-10));
        assert_eq!(parse_priority("HIGH"), Ok(10));
    }

    #[test]
    fn integers_are_taken_as_they_are() {
        assert_eq!(parse_priority("5"), Ok(5));
        assert_eq!(parse_priority("-3"), Ok(-3));
        assert_eq!(parse_priority("+2"), Ok(2));
    }

    #[test]
    fn anything_else_is_refused_with_the_choices() {
        assert_eq!(
            parse_priority("urgent").unwrap_err(),
            "invalid priority \"urgent\" (expected high, normal, low or an integer)"
        );
        assert!(parse_priority("99999999999").is_err());
        assert!(parse_priority("").is_err());
    }
}
