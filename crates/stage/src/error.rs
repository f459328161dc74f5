//! Error chains as tools print them.
//!
//! An error's `Display` says what failed at its own layer; its `source()` says why. The printer
//! joins the two levels with `: `, each once. Errors in this workspace never repeat their cause
//! in their own message (that is what `source()` is for), so there is nothing to de-duplicate.

/// `err` and its causes on one line: `top: cause: cause`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("writing the report")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("renaming the temporary file")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn every_cause_once_in_order() {
        let err = Outer(Middle(std::io::Error::other("disk full")));
        assert_eq!(
            error_chain(&err),
            "writing the report: renaming the temporary file: disk full"
        );
    }

    #[test]
    fn an_error_without_causes_is_its_message() {
        assert_eq!(
            error_chain(&std::io::Error::other("no such file")),
            "no such file"
        );
    }
}
