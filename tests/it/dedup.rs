//! Dedup: bytes already in the store cost nothing.

use std::fs;

use crate::util::*;

#[test]
fn copy_and_rename_of_a_large_file_add_no_chunk_data() {
    let ws = Ws::new();
    let big = random_bytes(1, 12 * MIB);
    ws.write("checkpoints/epoch_1.pt", &big);
    let first = ws.commit(&[]);
    assert_eq!(summary_u64(&first, "new_raw_bytes"), big.len() as u64);
    assert!(summary_u64(&first, "new_chunks") >= 3, "{first}");

    // A copy under another name: every chunk is already stored.
    fs::copy(ws.path("checkpoints/epoch_1.pt"), ws.path("best.pt")).unwrap();
    let copy = ws.commit(&[]);
    assert_eq!(summary_u64(&copy, "new_raw_bytes"), 0, "{copy}");
    assert_eq!(summary_u64(&copy, "new_chunks"), 0);
    assert_eq!(summary_u64(&copy, "new_stored_bytes"), 0);
    assert_eq!(summary_u64(&copy, "logical_bytes"), 2 * big.len() as u64);

    // A rename: the path is new, the bytes are not.
    fs::rename(
        ws.path("checkpoints/epoch_1.pt"),
        ws.path("checkpoints/renamed.pt"),
    )
    .unwrap();
    let renamed = ws.commit(&[]);
    assert_eq!(summary_u64(&renamed, "new_raw_bytes"), 0, "{renamed}");
    assert_eq!(summary_u64(&renamed, "new_chunks"), 0);

    // The repository holds the data once: unique bytes = one copy.
    let stats = ws.json(&["stats"]);
    assert_eq!(stats["unique_bytes"], big.len() as u64);
    assert_eq!(stats["snapshots"], 3);
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 4.9, "{stats}");

    // And every snapshot still reads back.
    let out = ws.restore_to("latest", "out");
    assert_eq!(fs::read(out.join("best.pt")).unwrap(), big);
    assert_eq!(fs::read(out.join("checkpoints/renamed.pt")).unwrap(), big);
}

#[test]
fn appending_to_a_log_stores_only_the_tail() {
    let ws = Ws::new();
    let mut rng = Rng::new(5);
    let log = rng.text(12 * MIB);
    ws.write("logs/training.log", &log);
    let first = ws.commit(&[]);
    assert_eq!(summary_u64(&first, "new_raw_bytes"), log.len() as u64);

    let tail = rng.text(64 * 1024);
    let mut grown = log.clone();
    grown.extend_from_slice(&tail);
    ws.write("logs/training.log", &grown);
    let second = ws.commit(&[]);
    let new_raw = summary_u64(&second, "new_raw_bytes");
    // Content-defined chunking: only the last chunk before the append
    // (at most the 4 MiB maximum chunk) and the appended bytes are new.
    assert!(new_raw >= tail.len() as u64, "{second}");
    assert!(
        new_raw <= (MAX_CHUNK + tail.len()) as u64,
        "append of {} bytes stored {new_raw} new bytes of a {} byte file",
        tail.len(),
        grown.len()
    );
    assert!(new_raw < grown.len() as u64 / 3);
    assert_eq!(
        ws.ok(&["cat", "latest:logs/training.log"]).into_bytes(),
        grown
    );
}

#[test]
fn inserting_bytes_in_the_middle_keeps_most_chunks() {
    let ws = Ws::new();
    let data = random_bytes(11, 12 * MIB);
    ws.write("model.bin", &data);
    ws.commit(&[]);
    let mut edited = data[..5 * MIB].to_vec();
    edited.extend_from_slice(b"inserted header bytes");
    edited.extend_from_slice(&data[5 * MIB..]);
    ws.write("model.bin", &edited);
    let s = ws.commit(&[]);
    // Boundaries resynchronise after the edit: at most a few chunks change.
    assert!(
        summary_u64(&s, "new_raw_bytes") <= 2 * MAX_CHUNK as u64,
        "{s}"
    );
    let out = ws.restore_to("latest", "out");
    assert_eq!(fs::read(out.join("model.bin")).unwrap(), edited);
}

#[test]
fn identical_files_in_one_commit_are_stored_once() {
    let ws = Ws::new();
    let data = random_bytes(3, 3 * MIB);
    for i in 0..4 {
        ws.write(&format!("copies/c{i}.bin"), &data);
    }
    let s = ws.commit(&[]);
    assert_eq!(summary_u64(&s, "new_raw_bytes"), data.len() as u64, "{s}");
    assert_eq!(summary_u64(&s, "logical_bytes"), 4 * data.len() as u64);
    let out = ws.restore_to("latest", "out");
    for i in 0..4 {
        assert_eq!(
            fs::read(out.join(format!("copies/c{i}.bin"))).unwrap(),
            data
        );
    }
}

#[test]
fn compressible_data_is_stored_compressed() {
    let ws = Ws::new();
    let text = Rng::new(8).text(2 * MIB);
    ws.write("logs/metrics.log", &text);
    let s = ws.commit(&[]);
    let raw = summary_u64(&s, "new_raw_bytes");
    let stored = summary_u64(&s, "new_stored_bytes");
    assert_eq!(raw, text.len() as u64);
    assert!(stored < raw / 2, "text stored as {stored} of {raw} bytes");
    // Incompressible data is kept raw, never larger than the input.
    ws.write("noise.bin", &random_bytes(9, MIB));
    let s = ws.commit(&[]);
    assert_eq!(summary_u64(&s, "new_raw_bytes"), MIB as u64);
    assert!(summary_u64(&s, "new_stored_bytes") <= MIB as u64);
}
