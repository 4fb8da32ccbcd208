use super::*;

/// Builds protocol-2 pickles the way torch.save writes them.
#[derive(Default)]
struct P(Vec<u8>, u8);

impl P {
    fn op(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn s(self, s: &str) -> Self {
        let mut p = self
            .op(b"X")
            .op(&(s.len() as u32).to_le_bytes())
            .op(s.as_bytes());
        p = p.put();
        p
    }
    fn put(mut self) -> Self {
        let k = self.1;
        self.1 += 1;
        self.op(&[b'q', k])
    }
    fn int(self, i: u8) -> Self {
        self.op(&[b'K', i])
    }
    fn global(self, m: &str, n: &str) -> Self {
        self.op(format!("c{m}\n{n}\n").as_bytes()).put()
    }
    /// `_rebuild_tensor_v2((storage), offset, shape, stride, False, OrderedDict())`.
    fn tensor(
        self,
        storage_class: &str,
        key: &str,
        offset: u8,
        shape: &[u8],
        stride: &[u8],
    ) -> Self {
        let mut p = self
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b"(")
            .op(b"(")
            .s("storage")
            .global("torch", storage_class)
            .s(key)
            .s("cpu")
            .int(100)
            .op(b"tQ")
            .int(offset)
            .op(b"(");
        for &d in shape {
            p = p.int(d);
        }
        p = p.op(b"t(");
        for &d in stride {
            p = p.int(d);
        }
        p.op(b"t\x89")
            .global("collections", "OrderedDict")
            .op(b")R")
            .op(b"tR")
            .put()
    }
}

fn state_dict() -> Vec<u8> {
    P::default()
        .op(b"\x80\x02")
        .global("collections", "OrderedDict")
        .op(b")R")
        .put()
        .op(b"(")
        .s("fc.weight")
        .tensor("FloatStorage", "0", 0, &[4, 3], &[3, 1])
        .s("fc.bias")
        .tensor("HalfStorage", "1", 2, &[4], &[1])
        .s("view")
        .tensor("FloatStorage", "0", 3, &[3, 2], &[1, 3])
        .s("steps")
        .tensor("LongStorage", "2", 0, &[], &[])
        .op(b"u.")
        .0
}

#[test]
fn state_dict_tensors_and_storages() {
    let p = parse_torch(&state_dict()).expect("parses");
    let names: Vec<&str> = p.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fc.weight", "fc.bias", "view", "steps"]);
    let w = &p.tensors[0];
    assert_eq!((w.ty.name, w.offset, w.span, w.bytes), ("F32", 0, 48, 48));
    assert_eq!(w.shape, [4, 3]);
    let b = &p.tensors[1];
    assert_eq!((b.ty.dtype, b.offset, b.bytes), (Dtype::F16, 4, 8));
    // A transposed view: 6 elements spanning storage elements 3..=8.
    let v = &p.tensors[2];
    assert_eq!(
        (v.storage.as_str(), v.offset, v.span, v.bytes),
        ("0", 12, 24, 24)
    );
    // A scalar holds one element.
    assert_eq!((p.tensors[3].bytes, p.tensors[3].span), (8, 8));
    assert_eq!(p.storages.len(), 3);
    assert_eq!(p.storage("1").unwrap().unwrap().dtype, Dtype::F16);
}

#[test]
fn every_prefix_and_garbage_is_none_not_a_panic() {
    let data = state_dict();
    for n in 0..data.len() {
        assert!(parse_torch(&data[..n]).is_none(), "prefix {n} parsed");
    }
    assert!(parse_torch(b"\x80\x02\xff.").is_none());
    assert!(parse_torch(b"").is_none());
    // Memo get of a missing key, SETITEMS on a non-dict, a bare mark.
    assert!(parse_torch(b"h\x05.").is_none());
    assert!(parse_torch(b"K\x01(K\x02K\x03u.").is_none());
    assert!(parse_torch(b"(.").is_none());
}

#[test]
fn self_referencing_and_shared_containers_are_bounded() {
    // A list that contains itself: the walk stops at MAX_DEPTH.
    let p = parse_torch(b"]q\x00h\x00a.").expect("parses");
    assert!(p.tensors.is_empty());
    // 40 levels of a dict holding the previous one twice would be 2^40
    // paths; the visit budget refuses it.
    let mut d = b"}q\x00".to_vec();
    for i in 1..40u8 {
        d.extend_from_slice(&[
            b'}',
            b'q',
            i,
            b'(',
            b'K',
            1,
            b'h',
            i - 1,
            b'K',
            2,
            b'h',
            i - 1,
            b'u',
        ]);
    }
    d.push(b'.');
    assert!(parse_torch(&d).is_none());
}

#[test]
fn a_large_memoized_argument_is_not_copied_per_reduce() {
    // A 200k-element tuple, then 200k REDUCEs of a torch callable and
    // 200k BINPERSIDs on it: linear work, or this test would not finish.
    let mut d = b"\x80\x02(".to_vec();
    d.extend(std::iter::repeat_n(b"K\x01".as_slice(), 200_000).flatten());
    d.extend_from_slice(b"tq\x00ctorch._utils\n_rebuild_parameter\nq\x01");
    for _ in 0..200_000 {
        d.extend_from_slice(b"h\x01h\x00R0h\x00Q0");
    }
    d.extend_from_slice(b"N.");
    let p = parse_torch(&d).expect("parses");
    assert!(p.tensors.is_empty() && p.storages.is_empty());
}

/// The `data.pkl` of a fixture written by torch.save (tests/fixtures/make_pt.py).
pub(crate) fn fixture_pickle(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let stem = name.trim_end_matches(".pt");
    let mut e = z.by_name(&format!("{stem}/data.pkl")).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut e, &mut out).unwrap();
    out
}

/// Name, dtype, shape, storage key, byte offset, bytes.
type Row<'a> = (&'a str, &'a str, Vec<u64>, &'a str, u64, u64);

#[test]
fn torch_save_checkpoint() {
    let p = parse_torch(&fixture_pickle("small_v1.pt")).expect("torch's pickle parses");
    let got: Vec<Row> = p
        .tensors
        .iter()
        .map(|t| {
            let (n, d, s, k) = (
                t.name.as_str(),
                t.ty.name,
                t.shape.clone(),
                t.storage.as_str(),
            );
            (n, d, s, k, t.offset, t.bytes)
        })
        .collect();
    let want: Vec<Row> = vec![
        ("model.fc1.weight", "F32", vec![16, 8], "0", 0, 512),
        ("model.fc1.bias", "F32", vec![16], "1", 0, 64),
        ("model.fc2.weight", "F16", vec![4, 16], "2", 0, 128),
        ("model.fc2.bias", "F16", vec![4], "3", 0, 8),
        ("model.emb.weight", "BF16", vec![8, 4], "4", 0, 64),
        ("model.pos_ids", "I64", vec![10], "5", 0, 80),
        // A view of rows 2..4 of fc1.weight: same storage, 16 elements in.
        ("model.fc1.rows", "F32", vec![2, 8], "0", 64, 64),
        ("optimizer.state.0.step", "F32", vec![], "6", 0, 4),
        ("optimizer.state.0.exp_avg", "F32", vec![16, 8], "7", 0, 512),
        (
            "optimizer.state.0.exp_avg_sq",
            "F32",
            vec![16, 8],
            "8",
            0,
            512,
        ),
        ("optimizer.state.1.step", "F32", vec![], "9", 0, 4),
        ("optimizer.state.1.exp_avg", "F32", vec![16], "10", 0, 64),
        ("optimizer.state.1.exp_avg_sq", "F32", vec![16], "11", 0, 64),
    ];
    assert_eq!(got, want);
    assert_eq!(p.storages.len(), 12);
    let dtype = |k: &str| p.storage(k).unwrap().unwrap().dtype;
    assert_eq!(
        [dtype("0"), dtype("2"), dtype("4"), dtype("5")],
        [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::Other]
    );
}

proptest::proptest! {
    /// Random byte flips of a real torch pickle: never a panic, and
    /// whatever parses is internally consistent.
    #[test]
    fn mutated_torch_pickles_never_panic(flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6), cut in proptest::prelude::any::<usize>()) {
        let mut data = fixture_pickle("small_v1.pt");
        for (at, b) in flips {
            let n = data.len();
            data[at % n] = b;
        }
        data.truncate(data.len() - cut % 4);
        if let Some(p) = parse_torch(&data) {
            for t in &p.tensors {
                proptest::prop_assert!(t.bytes == 0 || t.span >= t.ty.elem);
                proptest::prop_assert!(p.storage(&t.storage).is_some());
            }
        }
    }

    #[test]
    fn mutated_pickles_never_panic(flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8)) {
        let mut data = state_dict();
        for (at, b) in flips {
            let n = data.len();
            data[at % n] = b;
        }
        if let Some(p) = parse_torch(&data) {
            for t in &p.tensors {
                proptest::prop_assert!(t.bytes == 0 || t.span >= t.ty.elem);
            }
        }
    }
}
