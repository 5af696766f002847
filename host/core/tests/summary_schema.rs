//! `summary.json`'s schema is pinned: a change to a field name, place or
//! type shows up here (and must bump `SCHEMA_VERSION`).

use sglab_core::run_summary::{RunSummary, SCHEMA_VERSION};

/// A summary as sglab writes it (schema version 1), every block present.
const V1: &str = include_str!("summary_v1.json");

#[test]
fn version_1_round_trips_field_for_field() {
    let s = RunSummary::parse(V1).expect("a version-1 summary parses");
    assert_eq!(s.schema_version, SCHEMA_VERSION);
    assert_eq!(s.metrics.requests.ok, 9);
    assert_eq!(s.plugins.as_ref().unwrap().routing.name, "round-robin");
    assert_eq!(s.virtual_time.as_ref().unwrap().forward_passes, 120);
    assert_eq!(s.host.speedup, Some(250.0));
    let back: serde_json::Value = serde_json::to_value(&s).unwrap();
    let orig: serde_json::Value = serde_json::from_str(V1).unwrap();
    assert_eq!(back, orig, "writing what was read gives the same document");
    assert_eq!(orig["status"], s.status.as_str(), "as_str names a status as the file does");
}

#[test]
fn other_versions_and_unknown_fields_are_named() {
    let old = V1.replace("\"schema_version\": 1", "\"schema_version\": 0");
    assert_eq!(RunSummary::parse(&old).unwrap_err(), "schema_version 0; this sglab reads version 1");
    let none = V1.replace("\"schema_version\": 1,", "");
    assert!(RunSummary::parse(&none).unwrap_err().starts_with("no schema_version"));
    let extra = V1.replace("\"degraded\": false,", "\"degraded\": false, \"surprise\": 1,");
    assert!(RunSummary::parse(&extra).unwrap_err().contains("unknown field `surprise`"));
}

#[test]
fn the_writing_sglab_is_recorded_and_older_summaries_without_it_still_parse() {
    assert!(RunSummary::parse(V1).unwrap().sglab.is_none(), "the fixture predates the field");
    let with = V1.replace(
        "\"schema_version\": 1,",
        "\"schema_version\": 1, \"sglab\": {\"version\": \"0.1.0\", \"commit\": \"0123456789ab\"},",
    );
    let s = RunSummary::parse(&with).expect("parses");
    let info = s.sglab.as_ref().unwrap();
    assert_eq!((info.version.as_str(), info.commit.as_deref()), ("0.1.0", Some("0123456789ab")));
    let back: serde_json::Value = serde_json::to_value(&s).unwrap();
    assert_eq!(back, serde_json::from_str::<serde_json::Value>(&with).unwrap());
    let typo = with.replace("\"commit\"", "\"comit\"");
    assert!(RunSummary::parse(&typo).unwrap_err().contains("unknown field `comit`"));
}
