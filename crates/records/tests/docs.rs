//! docs/records.md is the contract: every example in it must parse into its documented type and
//! serialize back to the same JSON, and every record type must be documented.

use gp_records::{ndjson::parse_line, Record};
use serde_json::Value;

fn documented_examples() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/records.md");
    let text = std::fs::read_to_string(path).expect("read docs/records.md");
    let mut examples = Vec::new();
    let mut heading = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(h) = line.strip_prefix("### `") {
            heading = h.trim_end_matches('`').to_string();
        } else if line == "```json" {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            examples.push((heading.clone(), body.join("\n")));
        }
    }
    examples
}

#[test]
fn every_documented_example_round_trips() {
    let examples = documented_examples();
    assert!(!examples.is_empty());
    for (heading, json) in examples {
        let record = parse_line(&json)
            .unwrap_or_else(|e| panic!("docs example under {heading}: {e}"))
            .unwrap_or_else(|| panic!("docs example under {heading} has an unknown type"));
        assert_eq!(
            record.type_name(),
            heading,
            "example is filed under the wrong heading"
        );
        let original: Value = serde_json::from_str(&json).unwrap();
        let again = serde_json::to_value(&record).unwrap();
        assert_eq!(
            again, original,
            "docs example for {heading} does not match the type"
        );
    }
}

#[test]
fn every_record_type_is_documented() {
    let documented: Vec<String> = documented_examples().into_iter().map(|(h, _)| h).collect();
    for ty in Record::TYPES {
        assert!(
            documented.iter().any(|d| d == ty),
            "docs/records.md has no example for `{ty}`"
        );
    }
}
