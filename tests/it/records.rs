//! Property tests of every on-disk record: encode -> decode round trips,
//! pack files written and read back, and decoders that return errors (never
//! panic, never over-allocate) on arbitrary or mutated bytes.

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;
use snapstore::format::config::{ChunkerParams, RepoConfig};
use snapstore::format::pack::{
    decode_footer, decode_header, decode_trailer, encode_header, encode_trailer, Codec, PackEntry,
    PackKind, FOOTER_LEN, HEADER_LEN,
};
use snapstore::format::snapshot::{Snapshot, Summary};
use snapstore::format::tree::{ChunkRef, Entry, EntryKind, Tree};
use snapstore::store::packs::{read_pack_index, PackWriter};
use snapstore::store::Layout;
use snapstore::{ChunkId, PackId, SnapshotId, TreeId};

fn id32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

/// A valid single path component: no '/', no NUL, not "." or "..".
fn name() -> impl Strategy<Value = Vec<u8>> {
    vec(1u8..=255, 1..24)
        .prop_map(|mut n| {
            for b in n.iter_mut() {
                if *b == b'/' {
                    *b = b'_';
                }
            }
            n
        })
        .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn kind() -> impl Strategy<Value = EntryKind> {
    prop_oneof![
        vec((id32(), 0..=snapstore::format::MAX_CHUNK), 0..6).prop_map(|cs| {
            let chunks: Vec<ChunkRef> = cs
                .into_iter()
                .map(|(id, len)| ChunkRef {
                    id: ChunkId(id),
                    len,
                })
                .collect();
            EntryKind::File {
                size: chunks.iter().map(|c| c.len as u64).sum(),
                chunks,
            }
        }),
        id32().prop_map(|t| EntryKind::Dir { tree: TreeId(t) }),
        vec(any::<u8>(), 0..64).prop_map(|target| EntryKind::Symlink { target }),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (name(), 0u32..0o10000, any::<i64>(), kind()).prop_map(|(name, mode, mtime_ns, kind)| Entry {
        name,
        mode,
        mtime_ns,
        kind,
    })
}

/// A valid tree: entries sorted by name and unique.
fn tree() -> impl Strategy<Value = Tree> {
    vec(entry(), 0..12).prop_map(|es| {
        let by_name: BTreeMap<Vec<u8>, Entry> =
            es.into_iter().map(|e| (e.name.clone(), e)).collect();
        Tree {
            entries: by_name.into_values().collect(),
        }
    })
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        -1e12f64..1e12,
        Just(0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE)
    ]
}

fn summary() -> impl Strategy<Value = Summary> {
    any::<[u64; 9]>().prop_map(|v| Summary {
        files: v[0],
        dirs: v[1],
        symlinks: v[2],
        logical_bytes: v[3],
        files_read: v[4],
        bytes_read: v[5],
        new_chunks: v[6],
        new_raw_bytes: v[7],
        new_stored_bytes: v[8],
    })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        (any::<i64>(), ".{0,20}", ".{0,40}", vec(".{0,20}", 0..4)),
        (
            proptest::option::of(".{1,20}"),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            proptest::collection::btree_map(".{1,12}", finite(), 0..5),
            proptest::option::of(".{0,60}"),
        ),
        (
            proptest::collection::btree_map(".{1,12}", ".{0,12}", 0..3),
            proptest::option::of(id32()),
            id32(),
            summary(),
        ),
    )
        .prop_map(
            |(
                (time_ns, host, workspace, paths),
                (session, epoch, step, metrics, message),
                (labels, parent, root, summary),
            )| Snapshot {
                time_ns,
                host,
                workspace,
                paths,
                session,
                epoch,
                step,
                metrics,
                message,
                labels,
                parent: parent.map(SnapshotId),
                root: TreeId(root),
                summary,
            },
        )
}

fn chunker() -> impl Strategy<Value = ChunkerParams> {
    (
        64u32..=1_048_576,
        any::<u32>(),
        any::<u32>(),
        0u8..=3,
        any::<u64>(),
    )
        .prop_map(|(min, a, m, normalization, seed)| {
            let avg = min.max(256) + a % (4_194_304 - min.max(256) + 1);
            let max = avg.max(1024) + m % (16_777_216 - avg.max(1024) + 1);
            ChunkerParams {
                min_size: min,
                avg_size: avg,
                max_size: max,
                normalization,
                seed,
            }
        })
}

fn config() -> impl Strategy<Value = RepoConfig> {
    ("[0-9a-f]{0,32}", any::<i64>(), chunker(), 1i32..=22, 1u64..).prop_map(
        |(repo_id, created_ns, chunker, zstd_level, pack_target_size)| RepoConfig {
            repo_id,
            created_ns,
            chunker,
            zstd_level,
            pack_target_size,
        },
    )
}

/// Pack entries laid out one after another from the end of the header.
fn laid_out_entries() -> impl Strategy<Value = (Vec<PackEntry>, u64)> {
    vec(
        (id32(), 0u8..6, 0u32..5000, any::<u32>(), 0u64..3, id32()),
        0..20,
    )
    .prop_map(|raw| {
        let mut pos = HEADER_LEN as u64;
        let mut out = Vec::new();
        for (id, codec, stored_len, raw_len, gap, base) in raw {
            pos += gap;
            let codec = Codec::from_u8(codec).expect("codecs 0..6 exist");
            // Within what the codec may declare (larger is damaged).
            let raw_len = (raw_len as u64 % (codec.max_raw_len() as u64 + 1)) as u32;
            out.push(PackEntry {
                id: ChunkId(id),
                codec,
                offset: pos,
                stored_len,
                raw_len,
                // A float delta has a base (not itself), every other codec none.
                base: (codec == Codec::FloatDelta && base != id).then_some(ChunkId(base)),
            });
            pos += stored_len as u64;
        }
        (out, pos)
    })
}

/// One mutation of a byte string: flip, truncate, insert or delete.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Delete(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
    ]
}

fn mutate(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut v = bytes.to_vec();
    let n = v.len().max(1);
    match *m {
        Mutation::Flip(i, x) => {
            if !v.is_empty() {
                v[i % n] ^= x;
            }
        }
        Mutation::Truncate(i) => v.truncate(i % n),
        Mutation::Insert(i, b) => v.insert(i % (v.len() + 1), b),
        Mutation::Delete(i) => {
            if !v.is_empty() {
                v.remove(i % n);
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn tree_round_trips(t in tree()) {
        let (id, bytes) = t.encode();
        prop_assert_eq!(id, TreeId::of(&bytes));
        prop_assert!(bytes.starts_with(b"SNPT"));
        prop_assert_eq!(Tree::decode(&bytes).unwrap(), t);
    }

    #[test]
    fn tree_with_an_unsafe_name_is_refused(
        t in tree(),
        bad in prop_oneof![
            Just(b".".to_vec()),
            Just(b"..".to_vec()),
            Just(Vec::new()),
            name().prop_map(|mut n| { n.push(b'/'); n.extend_from_slice(b".."); n }),
            name().prop_map(|mut n| { n.insert(0, 0); n }),
        ],
        k in kind(),
    ) {
        let mut t = t;
        t.entries.retain(|e| e.name != bad);
        let at = t.entries.partition_point(|e| e.name < bad);
        t.entries.insert(at, Entry { name: bad, mode: 0o644, mtime_ns: 0, kind: k });
        let (_, bytes) = t.encode();
        prop_assert!(Tree::decode(&bytes).is_err());
    }

    #[test]
    fn tree_unsorted_duplicated_or_inconsistent_is_refused(t in tree(), extra in 1u64..1000) {
        prop_assume!(t.entries.len() >= 2);
        let mut swapped = t.clone();
        swapped.entries.swap(0, 1);
        prop_assert!(Tree::decode(&swapped.encode().1).is_err());
        let mut dup = t.clone();
        let first = dup.entries[0].clone();
        dup.entries.insert(1, first);
        prop_assert!(Tree::decode(&dup.encode().1).is_err());
        let mut sized = t.clone();
        if let Some(e) = sized.entries.iter_mut().find(|e| matches!(e.kind, EntryKind::File { .. })) {
            if let EntryKind::File { size, .. } = &mut e.kind {
                *size = size.wrapping_add(extra);
            }
            prop_assert!(Tree::decode(&sized.encode().1).is_err());
        }
    }

    #[test]
    fn snapshot_round_trips(s in snapshot()) {
        let (id, bytes) = s.encode();
        prop_assert_eq!(id, SnapshotId::of(&bytes));
        prop_assert!(bytes.starts_with(b"SNPS"));
        prop_assert_eq!(Snapshot::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn config_round_trips(c in config()) {
        prop_assert!(c.chunker.validate().is_ok());
        let bytes = c.encode();
        prop_assert_eq!(RepoConfig::decode(&bytes).unwrap(), c);
    }

    #[test]
    fn config_with_any_mutation_is_refused(c in config(), m in mutation()) {
        let bytes = c.encode();
        let bad = mutate(&bytes, &m);
        prop_assume!(bad != bytes);
        prop_assert!(RepoConfig::decode(&bad).is_err());
    }

    #[test]
    fn pack_trailer_round_trips((entries, blob_end) in laid_out_entries(), slack in 0u64..100) {
        let bytes = encode_trailer(&entries);
        let pack_len = blob_end + bytes.len() as u64;
        let (tlen, sum) = decode_footer(&bytes[bytes.len() - FOOTER_LEN..], pack_len).unwrap();
        prop_assert_eq!(tlen as usize, bytes.len() - FOOTER_LEN);
        let trailer = &bytes[..tlen as usize];
        prop_assert_eq!(decode_trailer(trailer, &sum, blob_end).unwrap(), entries.clone());
        prop_assert_eq!(decode_trailer(trailer, &sum, blob_end + slack).unwrap(), entries.clone());
        // An entry running past the blob area is refused.
        if entries.iter().any(|e| e.stored_len > 0) {
            prop_assert!(decode_trailer(trailer, &sum, blob_end - 1).is_err());
        }
    }

    #[test]
    fn pack_trailer_with_overlapping_entries_is_refused(
        (entries, blob_end) in laid_out_entries(),
        pick in any::<usize>(),
    ) {
        prop_assume!(entries.len() >= 2);
        let i = 1 + pick % (entries.len() - 1);
        prop_assume!(entries[i - 1].stored_len > 0);
        let mut bad = entries.clone();
        bad[i].offset = bad[i - 1].offset + bad[i - 1].stored_len as u64 - 1;
        let bytes = encode_trailer(&bad);
        let (tlen, sum) = decode_footer(&bytes[bytes.len() - FOOTER_LEN..], blob_end + bytes.len() as u64).unwrap();
        prop_assert!(decode_trailer(&bytes[..tlen as usize], &sum, blob_end).is_err());
    }

    #[test]
    fn pack_trailer_with_any_mutation_is_refused(
        (entries, blob_end) in laid_out_entries(),
        m in mutation(),
    ) {
        let bytes = encode_trailer(&entries);
        let bad = mutate(&bytes, &m);
        prop_assume!(bad != bytes);
        // Put it behind a blob area and read it back as `read_pack_index`
        // does: footer last, trailer before it, blobs before that.
        let mut pack = vec![0u8; blob_end as usize];
        pack.extend_from_slice(&bad);
        let decoded = if pack.len() < HEADER_LEN + FOOTER_LEN {
            None
        } else {
            let start = pack.len() - FOOTER_LEN;
            decode_footer(&pack[start..], pack.len() as u64)
                .ok()
                .and_then(|(tlen, sum)| {
                    let tstart = start.checked_sub(usize::try_from(tlen).ok()?)?;
                    decode_trailer(&pack[tstart..start], &sum, tstart as u64).ok()
                })
        };
        // Changed bytes are always caught (checksum, magic or bounds); an
        // inserted or deleted byte may at most move the trailer, never
        // change what it says.
        match m {
            Mutation::Flip(..) | Mutation::Truncate(_) => prop_assert!(decoded.is_none()),
            _ => prop_assert!(decoded.is_none_or(|d| d == entries)),
        }
    }

    #[test]
    fn header_round_trips(k in prop_oneof![Just(PackKind::Data), Just(PackKind::Tree)]) {
        prop_assert_eq!(decode_header(&encode_header(k)).unwrap(), k);
    }

    #[test]
    fn decoders_refuse_arbitrary_bytes(bytes in vec(any::<u8>(), 0..2048), n in any::<u64>()) {
        prop_assert!(Tree::decode(&bytes).is_err());
        prop_assert!(Snapshot::decode(&bytes).is_err());
        prop_assert!(RepoConfig::decode(&bytes).is_err());
        prop_assert!(decode_header(&bytes).is_err());
        let sum = *blake3::hash(&bytes).as_bytes();
        prop_assert!(decode_trailer(&bytes, &sum, n).is_err());
        let mut footer = [0u8; FOOTER_LEN];
        for (i, b) in bytes.iter().take(FOOTER_LEN).enumerate() {
            footer[i] = *b;
        }
        prop_assert!(decode_footer(&footer, n).is_err());
    }

    #[test]
    fn decoders_never_panic_on_bodies_behind_a_valid_envelope(body in vec(any::<u8>(), 0..2048), n in any::<u64>()) {
        // Past the magic and version, straight into bincode.
        let with = |magic: &[u8]| { let mut v = magic.to_vec(); v.extend_from_slice(&[1, 0]); v.extend_from_slice(&body); v };
        let _ = Tree::decode(&with(b"SNPT"));
        let _ = Snapshot::decode(&with(b"SNPS"));
        let trailer = with(b"SNPX");
        let sum = *blake3::hash(&trailer).as_bytes();
        let _ = decode_trailer(&trailer, &sum, n);
        let mut cfg = with(b"SNPC");
        let sum = *blake3::hash(&cfg).as_bytes();
        cfg.extend_from_slice(&sum);
        let _ = RepoConfig::decode(&cfg);
    }

    #[test]
    fn mutated_records_never_panic(t in tree(), s in snapshot(), m in mutation()) {
        let tb = t.encode().1;
        let bad = mutate(&tb, &m);
        // A truncated record never decodes.
        if Tree::decode(&bad).is_ok() {
            prop_assert!(!matches!(m, Mutation::Truncate(_)));
        }
        let sb = s.encode().1;
        let bad = mutate(&sb, &m);
        if Snapshot::decode(&bad).is_ok() {
            prop_assert!(!matches!(m, Mutation::Truncate(_)));
        }
    }
}

#[test]
fn huge_length_claims_are_refused_without_allocating() {
    // A vector length of 2^40 entries in a few bytes of input.
    for magic in [&b"SNPT"[..], b"SNPS", b"SNPX"] {
        let mut v = magic.to_vec();
        v.extend_from_slice(&[1, 0, 253]);
        v.extend_from_slice(&(1u64 << 40).to_le_bytes());
        v.extend_from_slice(&[0; 16]);
        match magic {
            b"SNPT" => assert!(Tree::decode(&v).is_err()),
            b"SNPS" => assert!(Snapshot::decode(&v).is_err()),
            _ => {
                let sum = *blake3::hash(&v).as_bytes();
                assert!(decode_trailer(&v, &sum, u64::MAX).is_err());
            }
        }
    }
    // A file entry claiming a 2^40-byte name.
    let mut v = b"SNPT".to_vec();
    v.extend_from_slice(&[1, 0, 1, 253]);
    v.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(Tree::decode(&v).is_err());
}

#[test]
fn newer_versions_are_refused_with_a_clear_message() {
    let (_, mut t) = Tree::default().encode();
    t[4] = 2;
    let e = Tree::decode(&t).unwrap_err().to_string();
    assert!(e.contains("upgrade snap"), "{e}");
    let mut h = encode_header(PackKind::Data);
    h[4] = 9;
    assert!(decode_header(&h).is_err());
}

fn pack_blobs() -> impl Strategy<Value = (bool, Vec<(Vec<u8>, bool)>)> {
    (
        any::<bool>(),
        vec((vec(any::<u8>(), 0..3000), any::<bool>()), 0..12),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn pack_writer_round_trips_through_read_pack_index((tree_kind, blobs) in pack_blobs()) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        for d in layout.dirs() {
            std::fs::create_dir_all(d).unwrap();
        }
        let kind = if tree_kind { PackKind::Tree } else { PackKind::Data };
        let mut w = PackWriter::create(&layout, kind).unwrap();
        for (data, zstd) in &blobs {
            let codec = if *zstd { Codec::Zstd } else { Codec::Raw };
            w.add(ChunkId::of(data), codec, data, data.len() as u32 * 2, None).unwrap();
        }
        let done = w.finish(&layout).unwrap();
        let path = layout.pack(&done.id);
        let file = std::fs::read(&path).unwrap();
        // The id is the keyed hash of the whole file.
        let mut h = PackId::hasher();
        h.update(&file);
        prop_assert_eq!(PackId::from_hasher(&h), done.id);
        prop_assert_eq!(done.size, file.len() as u64);

        let (k, size, entries) = read_pack_index(&path).unwrap();
        prop_assert_eq!(k, kind);
        prop_assert_eq!(size, file.len() as u64);
        prop_assert_eq!(&entries, &done.entries);
        prop_assert_eq!(entries.len(), blobs.len());
        for (e, (data, _)) in entries.iter().zip(&blobs) {
            prop_assert_eq!(e.id, ChunkId::of(data));
            prop_assert_eq!(&file[e.offset as usize..e.offset as usize + e.stored_len as usize], &data[..]);
        }
        // Nothing is left in tmp/.
        prop_assert_eq!(std::fs::read_dir(layout.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn truncated_or_damaged_pack_file_is_refused(blobs in vec(vec(any::<u8>(), 1..500), 1..6), cut in any::<usize>(), flip in any::<usize>()) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        for d in layout.dirs() {
            std::fs::create_dir_all(d).unwrap();
        }
        let mut w = PackWriter::create(&layout, PackKind::Data).unwrap();
        for data in &blobs {
            w.add(ChunkId::of(data), Codec::Raw, data, data.len() as u32, None).unwrap();
        }
        let done = w.finish(&layout).unwrap();
        let path = layout.pack(&done.id);
        let file = std::fs::read(&path).unwrap();
        let blob_end = done.entries.last().map(|e| e.offset + e.stored_len as u64).unwrap() as usize;

        let truncated = &file[..cut % file.len()];
        std::fs::write(&path, truncated).unwrap();
        prop_assert!(read_pack_index(&path).is_err());

        // Any flipped byte in the header, trailer or footer is caught.
        let mut bad = file.clone();
        let region: Vec<usize> = (0..7).chain(blob_end..file.len()).collect();
        let i = region[flip % region.len()];
        bad[i] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        prop_assert!(read_pack_index(&path).is_err(), "flip at {} of {} accepted", i, file.len());
    }
}
