//! `index.sqlite`: a derived cache of the repository files, never the only
//! copy of a fact. It maps blob ids to their pack location, lists snapshots
//! and tags for queries, and holds the stat cache. Losing it loses nothing:
//! `Repo::reindex` rebuilds it from packs, snapshots and refs, and a schema
//! version change simply rebuilds it.
//!
//! WAL mode: readers never wait for a writer's transaction.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::format::pack::{Codec, PackEntry, PackKind};
use crate::format::snapshot::Snapshot;
use crate::format::tree::ChunkRef;
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::store::packs::FinishedPack;

/// Ids per query in `Index::blobs`, well below SQLite's limit on bound
/// parameters (32766).
const BLOBS_PER_QUERY: usize = 500;

/// Bump to rebuild every existing index on first open.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE packs(id BLOB PRIMARY KEY, kind INTEGER NOT NULL, size INTEGER NOT NULL);
CREATE TABLE blobs(id BLOB NOT NULL, kind INTEGER NOT NULL, pack BLOB NOT NULL, codec INTEGER NOT NULL,
                   offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
                   base BLOB, PRIMARY KEY(id, kind, pack));
CREATE INDEX blobs_by_pack ON blobs(pack);
CREATE TABLE snapshots(id BLOB PRIMARY KEY, time_ns INTEGER NOT NULL, session TEXT, epoch INTEGER,
                       workspace TEXT NOT NULL, record BLOB NOT NULL);
CREATE INDEX snapshots_by_time ON snapshots(time_ns);
CREATE TABLE tags(name TEXT PRIMARY KEY, snapshot BLOB NOT NULL);
CREATE TABLE statcache(workspace TEXT NOT NULL, path BLOB NOT NULL, size INTEGER NOT NULL,
                       mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
                       dev INTEGER NOT NULL, mode INTEGER NOT NULL, chunks BLOB NOT NULL,
                       PRIMARY KEY(workspace, path));
";

/// Where a blob lives. A blob may be in several packs (a repack interrupted
/// after its new pack was durable); any of its locations serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLoc {
    pub pack: PackId,
    pub codec: Codec,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    /// The base chunk of a float delta.
    pub base: Option<ChunkId>,
}

/// A file's identity at its last commit, and the chunks it had then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatEntry {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub dev: u64,
    pub mode: u32,
    pub chunks: Vec<ChunkRef>,
}

pub struct Index {
    conn: Connection,
    path: PathBuf,
}

fn kind_code(kind: PackKind) -> i64 {
    kind as i64
}

impl Index {
    /// Opens (creating if needed) the index. Returns the index and whether it
    /// was created empty, in which case the caller must fill it from disk.
    pub fn open(path: &Path) -> Result<(Index, bool)> {
        match Self::try_open(path) {
            Err(e) if is_damaged(&e) => {
                // Corrupt or from another schema: it is only a cache, start over.
                // Other failures (busy, permissions, full disk) are reported as they are.
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{}", path.display(), suffix));
                }
                Self::try_open(path)
            }
            other => other,
        }
    }

    fn try_open(path: &Path) -> Result<(Index, bool)> {
        let err = |cause| Error::Index {
            path: path.to_path_buf(),
            cause,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        let has_meta: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name='meta'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(err)?
            > 0;
        let idx = Index {
            conn,
            path: path.to_path_buf(),
        };
        if has_meta {
            let v: Option<String> = idx
                .conn
                .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(err)?;
            if v.as_deref() == Some(&SCHEMA_VERSION.to_string()) {
                return Ok((idx, false));
            }
            return Err(Error::corrupt("index", "schema version differs"));
        }
        let tx = idx.conn.unchecked_transaction().map_err(err)?;
        tx.execute_batch(SCHEMA).map_err(err)?;
        tx.execute(
            "INSERT INTO meta VALUES('schema', ?1)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok((idx, true))
    }

    pub fn sql_err(&self, source: rusqlite::Error) -> Error {
        Error::Index {
            path: self.path.clone(),
            cause: source,
        }
    }

    /// Runs `f` inside one transaction: the commit point of every writer.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let path = self.path.clone();
        let err = |cause| Error::Index {
            path: path.clone(),
            cause,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let out = f(&Tx {
            tx: &tx,
            path: &path,
        })?;
        tx.commit().map_err(err)?;
        Ok(out)
    }

    pub fn blob(&self, id: &ChunkId, kind: PackKind) -> Result<Option<BlobLoc>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT pack, codec, offset, stored_len, raw_len, base FROM blobs WHERE id=?1 AND kind=?2 LIMIT 1")
            .map_err(|e| self.sql_err(e))?;
        let row = stmt
            .query_row(params![&id.0[..], kind_code(kind)], location_row)
            .optional()
            .map_err(|e| self.sql_err(e))?;
        row.map(blob_loc).transpose()
    }

    /// Locations of many blobs of one kind: `blob` for each id, in queries of
    /// `BLOBS_PER_QUERY` ids rather than one per id (restoring a large
    /// snapshot looks up hundreds of thousands of chunks). Ids the index does
    /// not know are absent from the map. A blob stored in several packs gets
    /// its location in the pack with the smallest id (any location serves).
    pub fn blobs(&self, ids: &[ChunkId], kind: PackKind) -> Result<HashMap<ChunkId, BlobLoc>> {
        let mut out = HashMap::with_capacity(ids.len());
        let kind = kind_code(kind);
        for part in ids.chunks(BLOBS_PER_QUERY) {
            let sql = format!(
                "SELECT pack, codec, offset, stored_len, raw_len, base, id FROM blobs \
                 WHERE kind=?1 AND id IN ({}) ORDER BY id, pack",
                vec!["?"; part.len()].join(",")
            );
            let mut stmt = self
                .conn
                .prepare_cached(&sql)
                .map_err(|e| self.sql_err(e))?;
            let mut args: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(part.len() + 1);
            args.push(&kind);
            args.extend(part.iter().map(|id| &id.0 as &dyn rusqlite::ToSql));
            let mut rows = stmt.query(&args[..]).map_err(|e| self.sql_err(e))?;
            while let Some(row) = rows.next().map_err(|e| self.sql_err(e))? {
                let id: Vec<u8> = row.get(6).map_err(|e| self.sql_err(e))?;
                let id = <[u8; 32]>::try_from(id.as_slice())
                    .map_err(|_| Error::corrupt("index", "bad id in blobs table"))?;
                let loc = blob_loc(location_row(row).map_err(|e| self.sql_err(e))?)?;
                out.entry(ChunkId(id)).or_insert(loc);
            }
        }
        Ok(out)
    }

    /// `blobs` of data chunks, plus the locations of the float-delta bases
    /// they need (a kept, restored or checked delta needs its base too).
    pub fn blobs_with_bases(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, BlobLoc>> {
        let mut locs = self.blobs(ids, PackKind::Data)?;
        let bases: Vec<ChunkId> = locs
            .values()
            .filter_map(|l| l.base)
            .filter(|b| !locs.contains_key(b))
            .collect();
        locs.extend(self.blobs(&bases, PackKind::Data)?);
        Ok(locs)
    }

    pub fn has_blob(&self, id: &ChunkId, kind: PackKind) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM blobs WHERE id=?1 AND kind=?2 LIMIT 1")
            .map_err(|e| self.sql_err(e))?;
        stmt.exists(params![&id.0[..], kind_code(kind)])
            .map_err(|e| self.sql_err(e))
    }

    pub fn pack_ids(&self) -> Result<HashSet<PackId>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM packs")
            .map_err(|e| self.sql_err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.sql_err(e))?;
        let mut out = HashSet::new();
        for r in rows {
            out.extend(PackId::from_slice(&r.map_err(|e| self.sql_err(e))?));
        }
        Ok(out)
    }

    /// `(pack id, kind, size)` of every indexed pack.
    pub fn packs(&self) -> Result<Vec<(PackId, PackKind, u64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, kind, size FROM packs")
            .map_err(|e| self.sql_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, u8>(1)?,
                    r.get::<_, u64>(2)?,
                ))
            })
            .map_err(|e| self.sql_err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let (id, kind, size) = r.map_err(|e| self.sql_err(e))?;
            if let (Some(id), Some(kind)) = (PackId::from_slice(&id), PackKind::from_u8(kind)) {
                out.push((id, kind, size));
            }
        }
        Ok(out)
    }

    /// Every blob recorded in pack `id`, in offset order.
    pub fn blobs_in_pack(&self, id: &PackId) -> Result<Vec<PackEntry>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, codec, offset, stored_len, raw_len, base FROM blobs WHERE pack=?1 ORDER BY offset")
            .map_err(|e| self.sql_err(e))?;
        let rows = stmt
            .query_map([&id.0[..]], location_row)
            .map_err(|e| self.sql_err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (blob, codec, offset, stored_len, raw_len, base) =
                decode_location(row.map_err(|e| self.sql_err(e))?)?;
            out.push(PackEntry {
                id: ChunkId(blob),
                codec,
                offset,
                stored_len,
                raw_len,
                base,
            });
        }
        Ok(out)
    }

    pub fn snapshot_ids(&self) -> Result<HashSet<SnapshotId>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM snapshots")
            .map_err(|e| self.sql_err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.sql_err(e))?;
        let mut out = HashSet::new();
        for r in rows {
            out.extend(SnapshotId::from_slice(&r.map_err(|e| self.sql_err(e))?));
        }
        Ok(out)
    }

    /// Every snapshot, oldest first (ties broken by id, so the order is total).
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, record FROM snapshots ORDER BY time_ns, id")
            .map_err(|e| self.sql_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| self.sql_err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let (id, rec) = r.map_err(|e| self.sql_err(e))?;
            let id = SnapshotId::from_slice(&id)
                .ok_or_else(|| Error::corrupt("index", "bad snapshot id"))?;
            out.push((id, Snapshot::decode(&rec)?));
        }
        Ok(out)
    }

    pub fn tags(&self) -> Result<Vec<(String, SnapshotId)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, snapshot FROM tags ORDER BY name")
            .map_err(|e| self.sql_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| self.sql_err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let (name, id) = r.map_err(|e| self.sql_err(e))?;
            out.extend(SnapshotId::from_slice(&id).map(|id| (name, id)));
        }
        Ok(out)
    }

    pub fn stat_entry(&self, workspace: &str, path: &[u8]) -> Result<Option<StatEntry>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT size, mtime_ns, ctime_ns, inode, dev, mode, chunks FROM statcache WHERE workspace=?1 AND path=?2",
            )
            .map_err(|e| self.sql_err(e))?;
        let row = stmt
            .query_row(params![workspace, path], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, u32>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                ))
            })
            .optional()
            .map_err(|e| self.sql_err(e))?;
        Ok(
            row.and_then(|(size, mtime_ns, ctime_ns, inode, dev, mode, chunks)| {
                let chunks = decode_chunk_list(&chunks)?;
                Some(StatEntry {
                    size: size as u64,
                    mtime_ns,
                    ctime_ns,
                    inode: inode as u64,
                    dev: dev as u64,
                    mode,
                    chunks,
                })
            }),
        )
    }

    /// Sums over indexed data blobs: `(count, raw bytes, stored bytes)`.
    /// `data_totals` per codec: `(codec, count, raw bytes, stored bytes)`,
    /// in codec order.
    pub fn data_totals_by_codec(&self) -> Result<Vec<(Codec, u64, u64, u64)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT codec, count(*), sum(raw_len), sum(stored_len) FROM \
                 (SELECT codec, raw_len, stored_len FROM blobs WHERE kind=0 GROUP BY id) \
                 GROUP BY codec ORDER BY codec",
            )
            .map_err(|e| self.sql_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, u8>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(|e| self.sql_err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let (codec, n, raw, stored) = r.map_err(|e| self.sql_err(e))?;
            let codec = Codec::from_u8(codec)
                .ok_or_else(|| Error::corrupt("index", format!("unknown codec {codec}")))?;
            out.push((codec, n, raw, stored));
        }
        Ok(out)
    }

    pub fn data_totals(&self) -> Result<(u64, u64, u64)> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(raw_len),0), coalesce(sum(stored_len),0) FROM \
                 (SELECT raw_len, stored_len FROM blobs WHERE kind=0 GROUP BY id)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| self.sql_err(e))
    }
}

/// A `blobs` row selected as `(key, codec, offset, stored_len, raw_len,
/// base)`, where the key is the pack id or the blob id depending on the query.
type LocationRow = (Vec<u8>, u8, u64, u32, u32, Option<Vec<u8>>);

fn location_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LocationRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

/// A checked location row: key, codec, offset, stored and raw length, base.
type Location = ([u8; 32], Codec, u64, u32, u32, Option<ChunkId>);

/// Checks a location row's key, codec and base.
fn decode_location(
    (key, codec, offset, stored_len, raw_len, base): LocationRow,
) -> Result<Location> {
    let bad_id = || Error::corrupt("index", "bad id in blobs table");
    let key = <[u8; 32]>::try_from(key.as_slice()).map_err(|_| bad_id())?;
    let codec = Codec::from_u8(codec)
        .ok_or_else(|| Error::corrupt("index", format!("unknown codec {codec}")))?;
    let base = base
        .map(|b| ChunkId::from_slice(&b).ok_or_else(bad_id))
        .transpose()?;
    Ok((key, codec, offset, stored_len, raw_len, base))
}

/// A `blobs` row selected by blob id, as a location (its key is the pack).
fn blob_loc(row: LocationRow) -> Result<BlobLoc> {
    let (pack, codec, offset, stored_len, raw_len, base) = decode_location(row)?;
    Ok(BlobLoc {
        pack: PackId(pack),
        codec,
        offset,
        stored_len,
        raw_len,
        base,
    })
}

/// True if `e` means the index file is unusable rather than unreachable.
fn is_damaged(e: &Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e {
        Error::Corrupt { .. } => true,
        Error::Index {
            cause: rusqlite::Error::SqliteFailure(f, _),
            ..
        } => {
            matches!(f.code, DatabaseCorrupt | NotADatabase)
        }
        _ => false,
    }
}

/// Chunk lists are stored in the stat cache as 36-byte records (id, len LE).
fn encode_chunk_list(chunks: &[ChunkRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * 36);
    for c in chunks {
        out.extend_from_slice(&c.id.0);
        out.extend_from_slice(&c.len.to_le_bytes());
    }
    out
}

fn decode_chunk_list(bytes: &[u8]) -> Option<Vec<ChunkRef>> {
    if bytes.len() % 36 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks(36)
            .map(|c| ChunkRef {
                id: ChunkId::from_slice(&c[..32]).expect("32 bytes"),
                len: u32::from_le_bytes(c[32..36].try_into().expect("4 bytes")),
            })
            .collect(),
    )
}

/// Write operations, only available inside `Index::transaction`.
pub struct Tx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    path: &'a Path,
}

impl Tx<'_> {
    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Index {
            path: self.path.to_path_buf(),
            cause: source,
        }
    }

    pub fn insert_pack(&self, pack: &FinishedPack) -> Result<()> {
        self.tx
            .execute(
                "INSERT OR IGNORE INTO packs VALUES(?1, ?2, ?3)",
                params![&pack.id.0[..], kind_code(pack.kind), pack.size],
            )
            .map_err(|e| self.err(e))?;
        let mut stmt = self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO blobs VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .map_err(|e| self.err(e))?;
        for e in &pack.entries {
            stmt.execute(params![
                &e.id.0[..],
                kind_code(pack.kind),
                &pack.id.0[..],
                e.codec as u8,
                e.offset,
                e.stored_len,
                e.raw_len,
                e.base.as_ref().map(|b| &b.0[..])
            ])
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub fn delete_pack(&self, id: &PackId) -> Result<()> {
        self.tx
            .execute("DELETE FROM blobs WHERE pack=?1", [&id.0[..]])
            .map_err(|e| self.err(e))?;
        self.tx
            .execute("DELETE FROM packs WHERE id=?1", [&id.0[..]])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn insert_snapshot(&self, id: &SnapshotId, snap: &Snapshot, record: &[u8]) -> Result<()> {
        self.tx
            .execute(
                "INSERT OR IGNORE INTO snapshots VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &id.0[..],
                    snap.time_ns,
                    snap.session,
                    snap.epoch,
                    snap.workspace,
                    record
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.tx
            .execute("DELETE FROM snapshots WHERE id=?1", [&id.0[..]])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn set_tag(&self, name: &str, id: &SnapshotId) -> Result<()> {
        self.tx
            .execute(
                "INSERT OR REPLACE INTO tags VALUES(?1, ?2)",
                params![name, &id.0[..]],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn replace_tags(&self, tags: &[(String, SnapshotId)]) -> Result<()> {
        self.tx
            .execute("DELETE FROM tags", [])
            .map_err(|e| self.err(e))?;
        for (name, id) in tags {
            self.set_tag(name, id)?;
        }
        Ok(())
    }

    pub fn delete_tag(&self, name: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM tags WHERE name=?1", [name])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn put_stat(&self, workspace: &str, path: &[u8], e: &StatEntry) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT OR REPLACE INTO statcache VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(|e| self.err(e))?;
        stmt.execute(params![
            workspace,
            path,
            e.size as i64,
            e.mtime_ns,
            e.ctime_ns,
            e.inode as i64,
            e.dev as i64,
            e.mode,
            encode_chunk_list(&e.chunks)
        ])
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn clear_workspace_stat(&self, workspace: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM statcache WHERE workspace=?1", [workspace])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn clear_statcache(&self) -> Result<()> {
        self.tx
            .execute("DELETE FROM statcache", [])
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(seed: u8, kind: PackKind, ids: &[ChunkId]) -> FinishedPack {
        let entries: Vec<PackEntry> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| PackEntry {
                id: *id,
                // Every other blob a delta, so the base column round-trips.
                codec: if i % 2 == 1 {
                    Codec::FloatDelta
                } else {
                    Codec::Zstd
                },
                offset: 8 + 100 * i as u64,
                stored_len: 100,
                raw_len: 200 + seed as u32,
                base: (i % 2 == 1).then(|| ChunkId::of(&[seed, i as u8])),
            })
            .collect();
        FinishedPack {
            id: PackId([seed; 32]),
            kind,
            size: 8 + 100 * ids.len() as u64,
            entries,
        }
    }

    /// `blobs` answers what `blob` answers for every id, across query
    /// batches, for ids in two packs and for ids the index does not know.
    #[test]
    fn blobs_agrees_with_blob() {
        let dir = tempfile::tempdir().unwrap();
        let (mut index, _) = Index::open(&dir.path().join("index.sqlite")).unwrap();
        let ids: Vec<ChunkId> = (0..1200u32)
            .map(|i| ChunkId::of(&i.to_le_bytes()))
            .collect();
        index
            .transaction(|tx| {
                tx.insert_pack(&pack(2, PackKind::Data, &ids[..700]))?;
                // Ids 600..700 are in both data packs; a tree with id 0 is not data.
                tx.insert_pack(&pack(1, PackKind::Data, &ids[600..1100]))?;
                tx.insert_pack(&pack(3, PackKind::Tree, &ids[..1]))
            })
            .unwrap();
        let found = index.blobs(&ids, PackKind::Data).unwrap();
        assert_eq!(found.len(), 1100);
        for id in &ids {
            assert_eq!(
                found.get(id).copied(),
                index.blob(id, PackKind::Data).unwrap()
            );
        }
        assert_eq!(found[&ids[650]].pack, PackId([1; 32]));
        assert_eq!(found[&ids[1]].base, Some(ChunkId::of(&[2, 1])));
        assert_eq!(found[&ids[0]].base, None);
        assert_eq!(
            index.blobs_in_pack(&PackId([2; 32])).unwrap(),
            pack(2, PackKind::Data, &ids[..700]).entries
        );
        let trees = index.blobs(&ids[..3], PackKind::Tree).unwrap();
        assert_eq!(trees.keys().collect::<Vec<_>>(), vec![&ids[0]]);
        assert!(index.blobs(&[], PackKind::Data).unwrap().is_empty());
    }
}
