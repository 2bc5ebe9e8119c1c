//! A run's return data (`RUN_DIR/return_data.{json,yaml}`, sent with its `RunFinished`) turned
//! into the JSON text the store keeps and `GetRun` shows.
//!
//! The bytes come from a run, so they are parsed here, bounded (the service refused anything
//! over `rota_proto::MAX_RETURN_DATA`), and a file that does not parse is kept as a problem
//! naming the file, never as an error of the result: the run's outcome is its exit status.

use rota_proto as pb;

use crate::store::ReturnDataRecord;

/// The record to store for this result; `None` when the run left no return data.
pub(super) fn record(msg: &pb::RunFinished) -> Option<ReturnDataRecord> {
    if msg.return_data_file.is_empty() {
        return None;
    }
    let mut rec = ReturnDataRecord {
        attempt: msg.attempt,
        ..ReturnDataRecord::default()
    };
    if !msg.return_data_problem.is_empty() {
        rec.problem = msg.return_data_problem.clone();
        return Some(rec);
    }
    match to_json(&msg.return_data_file, &msg.return_data) {
        Ok(json) => rec.data = json,
        Err(e) => rec.problem = format!("{}: {e}", msg.return_data_file),
    }
    Some(rec)
}

fn to_json(file: &str, bytes: &[u8]) -> Result<String, String> {
    let value: serde_json::Value = if file.ends_with(".yaml") {
        serde_norway::from_slice(bytes).map_err(|e| e.to_string())?
    } else {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())?
    };
    serde_json::to_string(&value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(file: &str, data: &str) -> pb::RunFinished {
        pb::RunFinished {
            attempt: 2,
            return_data_file: file.into(),
            return_data: data.as_bytes().to_vec(),
            ..pb::RunFinished::default()
        }
    }

    #[test]
    fn yaml_and_json_are_stored_as_json() {
        let rec = record(&finished("return_data.yaml", "rows: 3\nname: db1\n")).unwrap();
        assert_eq!(rec.data, r#"{"name":"db1","rows":3}"#);
        assert_eq!(rec.attempt, 2);
        let rec = record(&finished("return_data.json", r#"{"ok": true}"#)).unwrap();
        assert_eq!(rec.data, r#"{"ok":true}"#);
        assert_eq!(record(&finished("", "")), None);
    }

    #[test]
    fn a_file_that_does_not_parse_is_a_problem_naming_it() {
        let rec = record(&finished("return_data.json", "{not json")).unwrap();
        assert!(rec.data.is_empty());
        assert!(rec.problem.starts_with("return_data.json: "), "{rec:?}");
    }

    #[test]
    fn the_agents_problem_is_kept() {
        let mut msg = finished("return_data.json", "");
        msg.return_data_problem = "return_data.json is 70000 bytes, more than 65536".into();
        let rec = record(&msg).unwrap();
        assert_eq!(rec.problem, msg.return_data_problem);
    }
}
