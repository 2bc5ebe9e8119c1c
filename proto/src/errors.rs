//! How an error is told to people, one way for the three binaries: libraries (tonic's
//! transport, hyper, the PostgreSQL driver) put the useful part of an error in its sources
//! ("transport error" → "tcp connect error" → "Connection refused").

/// The error and its causes, joined with ": ", each said once (a cause whose text the line
/// already ends with is left out).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.ends_with(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// The innermost cause alone, where the outer layers would only repeat what the message around
/// it says (a TLS file that does not parse, an address that does not answer).
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct E {
        text: &'static str,
        #[source]
        source: Option<Box<E>>,
    }

    fn e(text: &'static str, source: Option<E>) -> E {
        E {
            text,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn the_chain_says_each_cause_once_and_the_root_is_the_innermost() {
        let err = e(
            "transport error",
            Some(e("tcp connect error: refused", Some(e("refused", None)))),
        );
        assert_eq!(chain(&err), "transport error: tcp connect error: refused");
        assert_eq!(root_cause(&err), "refused");
        assert_eq!(chain(&e("alone", None)), "alone");
    }
}
