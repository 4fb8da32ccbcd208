//! `index.sqlite`: a derived cache of the repository files, never the only
//! copy of a fact. It maps blob ids to their pack location, lists snapshots
//! and tags for queries, and holds the stat cache. Losing it loses nothing:
//! `Repo::reindex` rebuilds it from packs, snapshots and refs. An index of
//! the previous schema is migrated in place (rows and stat cache kept) by
//! the first command that can write it; an older one is rebuilt by the next
//! writer; a newer snap's index is refused and never deleted.
//!
//! WAL mode: readers never wait for a writer's transaction.
//!
//! Who may do what (fail closed): only a writer, holding the writer lock,
//! deletes the index file (`Index::open`: a damaged index, or one of an
//! older schema that cannot be migrated, is deleted and rebuilt). A reader opens it with
//! `Index::open_shared`, which never deletes: read-write if it can, else
//! read-only (a read-only mount, a repository this user cannot write), and
//! when it cannot use the file at all or cannot bring it up to date it
//! works from a private copy in memory (`Index::in_memory`,
//! `Index::copy_to_memory`) for that one command.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Params, Row};

use crate::error::{Error, Result};
use crate::format::pack::{Codec, PackEntry, PackKind};
use crate::format::snapshot::Snapshot;
use crate::format::tree::ChunkRef;
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::store::packs::FinishedPack;

/// Ids per query in `Index::blobs`, well below SQLite's limit on bound
/// parameters (32766).
const BLOBS_PER_QUERY: usize = 500;

/// The schema this snap writes. An index of `MIGRATES_FROM` is brought to
/// it in place (`migrate_v3`); an older one is rebuilt by a writer; a newer
/// one is refused (`Error::NewerIndex`), never deleted.
const SCHEMA_VERSION: i64 = 4;
/// The one older schema migrated in place rather than rebuilt.
const MIGRATES_FROM: i64 = 3;

/// Sized for many small files: a blob row names its pack by the pack's
/// row number (`packs.num`), not its 32-byte id, and a stat cache row its
/// workspace by number; `blobs` and `statcache` are `WITHOUT ROWID`, so
/// each row is stored once, in its primary key's b-tree, with no rowid and
/// no separate key index beside it. `blobs_by_pack` (for dropping and
/// listing a pack's blobs) holds the pack number and the key.
const SCHEMA: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE packs(num INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, kind INTEGER NOT NULL,
                   size INTEGER NOT NULL);
CREATE TABLE blobs(id BLOB NOT NULL, kind INTEGER NOT NULL, pack INTEGER NOT NULL, codec INTEGER NOT NULL,
                   offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
                   base BLOB, PRIMARY KEY(id, kind, pack)) WITHOUT ROWID;
CREATE INDEX blobs_by_pack ON blobs(pack);
CREATE TABLE snapshots(id BLOB PRIMARY KEY, time_ns INTEGER NOT NULL, session TEXT, epoch INTEGER,
                       workspace TEXT NOT NULL, record BLOB NOT NULL);
CREATE TABLE tags(name TEXT PRIMARY KEY, snapshot BLOB NOT NULL);
CREATE TABLE workspaces(num INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE statcache(workspace INTEGER NOT NULL, path BLOB NOT NULL, size INTEGER NOT NULL,
                       mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
                       dev INTEGER NOT NULL, mode INTEGER NOT NULL, chunks BLOB NOT NULL,
                       PRIMARY KEY(workspace, path)) WITHOUT ROWID;
";

/// Schema 3 -> 4, in one transaction: the same rows, packs and workspaces
/// numbered, the rowid tables rebuilt without rowid, and the unused
/// `snapshots_by_time` index dropped. A blob row whose pack has no row
/// (which no snap writes) has nothing to name and is left out; the sync
/// that follows every open re-adds whatever a pack's trailer lists.
const MIGRATE_V3: &str = "
CREATE TABLE packs_v4(num INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, kind INTEGER NOT NULL,
                      size INTEGER NOT NULL);
INSERT INTO packs_v4(id, kind, size) SELECT id, kind, size FROM packs ORDER BY id;
CREATE TABLE blobs_v4(id BLOB NOT NULL, kind INTEGER NOT NULL, pack INTEGER NOT NULL, codec INTEGER NOT NULL,
                      offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
                      base BLOB, PRIMARY KEY(id, kind, pack)) WITHOUT ROWID;
INSERT INTO blobs_v4 SELECT b.id, b.kind, p.num, b.codec, b.offset, b.stored_len, b.raw_len, b.base
                     FROM blobs b JOIN packs_v4 p ON p.id = b.pack;
DROP TABLE blobs;
DROP TABLE packs;
ALTER TABLE packs_v4 RENAME TO packs;
ALTER TABLE blobs_v4 RENAME TO blobs;
CREATE INDEX blobs_by_pack ON blobs(pack);
DROP INDEX IF EXISTS snapshots_by_time;
CREATE TABLE workspaces(num INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
INSERT INTO workspaces(path) SELECT DISTINCT workspace FROM statcache ORDER BY workspace;
CREATE TABLE statcache_v4(workspace INTEGER NOT NULL, path BLOB NOT NULL, size INTEGER NOT NULL,
                          mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
                          dev INTEGER NOT NULL, mode INTEGER NOT NULL, chunks BLOB NOT NULL,
                          PRIMARY KEY(workspace, path)) WITHOUT ROWID;
INSERT INTO statcache_v4 SELECT w.num, s.path, s.size, s.mtime_ns, s.ctime_ns, s.inode, s.dev, s.mode,
                                s.chunks
                         FROM statcache s JOIN workspaces w ON w.path = s.workspace;
DROP TABLE statcache;
ALTER TABLE statcache_v4 RENAME TO statcache;
UPDATE meta SET value = '4' WHERE key = 'schema';
";

/// What an index file's `meta` table says of its schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schema {
    /// No tables yet: a new file.
    Empty,
    Current,
    /// `MIGRATES_FROM`: brought up to date in place by a read-write open.
    Migratable,
    /// Older (or no version at all): rebuilt by a writer.
    Older,
    /// Written by a newer snap: refused.
    Newer(i64),
}

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

/// The identity and attributes of a file system entry, from `lstat` or
/// `fstat`: what a commit records and what the stat cache compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub dev: u64,
    pub mode: u32,
}

impl Meta {
    pub fn of(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Meta {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            inode: m.ino(),
            dev: m.dev(),
            mode: m.mode() & 0o7777,
        }
    }
}

/// A file's identity at its last commit, and the chunks it had then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatEntry {
    pub meta: Meta,
    pub chunks: Vec<ChunkRef>,
}

pub struct Index {
    conn: Connection,
    path: PathBuf,
    backing: Backing,
}

/// Where an open index lives and whether it may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// `index.sqlite`, open for reading and writing.
    File,
    /// `index.sqlite`, open read-only: the sync on open can add nothing.
    ReadOnly,
    /// A private copy in memory, for this command only.
    Memory,
}

fn kind_code(kind: PackKind) -> i64 {
    kind as i64
}

/// One connection (or open transaction) and the index file it belongs to:
/// every query goes through these few steps, which name the file in their
/// errors. Statements are cached per connection.
struct Sql<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

impl Sql<'_> {
    fn err(&self, cause: rusqlite::Error) -> Error {
        Error::Index {
            path: self.path.to_path_buf(),
            cause,
        }
    }

    /// Every row of `sql`, each mapped by `row`.
    fn rows<T>(
        &self,
        sql: &str,
        args: impl Params,
        row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(args, row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<T>>>()
            .map_err(|e| self.err(e))
    }

    /// The first row of `sql`, if there is one, mapped by `row`.
    fn row<T>(
        &self,
        sql: &str,
        args: impl Params,
        row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        stmt.query_row(args, row)
            .optional()
            .map_err(|e| self.err(e))
    }

    fn execute(&self, sql: &str, args: impl Params) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        stmt.execute(args).map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl Index {
    /// Opens (creating if needed) the index. Returns the index and whether it
    /// was created empty, in which case the caller must fill it from disk.
    pub fn open(path: &Path) -> Result<(Index, bool)> {
        match Self::try_open(path) {
            // A newer snap's index is never deleted (fail closed).
            Err(e @ Error::NewerIndex { .. }) => Err(e),
            Err(e) if is_damaged(&e) => {
                // Corrupt or from another schema: it is only a cache, start over.
                // Other failures (busy, permissions, full disk) are reported as they are.
                for file in files(path) {
                    let _ = std::fs::remove_file(file);
                }
                Self::try_open(path)
            }
            other => other,
        }
    }

    /// Opens the index for a reader, never deleting it: read-write (creating
    /// it if missing) when possible, else read-only, else read-only as
    /// immutable (no `-shm` file can be made: a read-only mount). A damaged
    /// index or one of another schema is an error for which `is_damaged`
    /// holds; the caller then works from `Index::in_memory`.
    pub fn open_shared(path: &Path) -> Result<(Index, bool)> {
        let rw = match Self::try_open(path) {
            Err(e) if !is_damaged(&e) => e,
            other => return other,
        };
        if !path.exists() {
            return Err(rw);
        }
        match Self::try_open_readonly(path, false) {
            Err(e) if !is_damaged(&e) => {}
            other => return other,
        }
        Self::try_open_readonly(path, true).map_err(|e| if is_damaged(&e) { e } else { rw })
    }

    /// An empty index in memory, for one command (see the module's docs).
    pub fn in_memory(path: &Path) -> Result<Index> {
        let err = |cause| Error::Index {
            path: path.to_path_buf(),
            cause,
        };
        let conn = Connection::open_in_memory().map_err(err)?;
        let idx = Index {
            conn,
            path: path.to_path_buf(),
            backing: Backing::Memory,
        };
        idx.create_schema()?;
        Ok(idx)
    }

    /// A copy of this index in memory (a reader that cannot write the file
    /// but must bring the index up to date for its command).
    pub fn copy_to_memory(&self) -> Result<Index> {
        let err = |cause| Error::Index {
            path: self.path.clone(),
            cause,
        };
        let mut conn = Connection::open_in_memory().map_err(err)?;
        rusqlite::backup::Backup::new(&self.conn, &mut conn)
            .and_then(|b| b.run_to_completion(1024, Duration::ZERO, None))
            .map_err(err)?;
        Ok(Index {
            conn,
            path: self.path.clone(),
            backing: Backing::Memory,
        })
    }

    /// The index file (for a copy in memory, the file it stands in for).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where this index lives.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// SQLite's `quick_check` of the whole file: `None` if it is sound, else
    /// what SQLite found first. A reader's queries touch only what they
    /// need, so damage in an unused page shows only here.
    pub fn damage(&self) -> Result<Option<String>> {
        let found = self
            .sql()
            .rows("PRAGMA quick_check", [], |r| r.get::<_, String>(0));
        match found {
            Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(None),
            Ok(lines) => Ok(Some(
                lines.into_iter().take(3).collect::<Vec<_>>().join("; "),
            )),
            Err(e) if is_damaged(&e) => Ok(Some(match e {
                Error::Index { cause, .. } => cause.to_string(),
                other => other.to_string(),
            })),
            Err(e) => Err(e),
        }
    }

    /// Deletes the index at `path` with its WAL and shared-memory files (a
    /// missing one is already deleted). Nothing may have it open.
    pub fn delete_files(path: &Path) -> Result<()> {
        for file in files(path) {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete", &file, e)),
            }
        }
        Ok(())
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
        let mut idx = Index {
            conn,
            path: path.to_path_buf(),
            backing: Backing::File,
        };
        match idx.schema()? {
            Schema::Current => Ok((idx, false)),
            Schema::Empty => {
                idx.create_schema()?;
                Ok((idx, true))
            }
            Schema::Migratable => {
                idx.migrate()?;
                Ok((idx, false))
            }
            other => Err(idx.schema_error(other)),
        }
    }

    /// Opens the index file read-only; `immutable` also tells SQLite that
    /// nobody changes it meanwhile, so it needs no `-shm` file (on a
    /// read-only mount nobody can). An index without tables is stale here:
    /// it cannot be filled, so it is refused like a damaged one.
    fn try_open_readonly(path: &Path, immutable: bool) -> Result<(Index, bool)> {
        use rusqlite::OpenFlags;
        let err = |cause| Error::Index {
            path: path.to_path_buf(),
            cause,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            Connection::open_with_flags(
                format!("file:{}?immutable=1", uri_path(path)),
                flags | OpenFlags::SQLITE_OPEN_URI,
            )
        } else {
            Connection::open_with_flags(path, flags)
        }
        .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        let idx = Index {
            conn,
            path: path.to_path_buf(),
            backing: Backing::ReadOnly,
        };
        match idx.schema()? {
            Schema::Current => Ok((idx, false)),
            Schema::Empty => Err(Error::corrupt("index", "it has no tables")),
            other => Err(idx.schema_error(other)),
        }
    }

    /// The schema the file's `meta` table names.
    fn schema(&self) -> Result<Schema> {
        let sql = self.sql();
        let has_meta = sql
            .row(
                "SELECT count(*) FROM sqlite_master WHERE name='meta'",
                [],
                |r| r.get::<_, i64>(0),
            )?
            .unwrap_or(0)
            > 0;
        if !has_meta {
            return Ok(Schema::Empty);
        }
        let v: Option<String> = sql.row("SELECT value FROM meta WHERE key='schema'", [], |r| {
            r.get(0)
        })?;
        Ok(match v.as_deref().map(str::parse::<i64>) {
            Some(Ok(SCHEMA_VERSION)) => Schema::Current,
            Some(Ok(MIGRATES_FROM)) => Schema::Migratable,
            Some(Ok(n)) if n > SCHEMA_VERSION => Schema::Newer(n),
            _ => Schema::Older,
        })
    }

    /// The error for an index this open cannot use as it is: of a newer
    /// snap (refused, never deleted), or another schema (for which
    /// `is_damaged` holds: a writer rebuilds it, a reader works from memory).
    fn schema_error(&self, schema: Schema) -> Error {
        match schema {
            Schema::Newer(found) => Error::NewerIndex {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            },
            Schema::Migratable => Error::corrupt(
                "index",
                format!(
                    "schema version {MIGRATES_FROM} (this snap's is {SCHEMA_VERSION}); \
                     the next command that can write it migrates it in place"
                ),
            ),
            _ => Error::corrupt(
                "index",
                format!("its schema version differs from this snap's {SCHEMA_VERSION}"),
            ),
        }
    }

    /// Brings a schema `MIGRATES_FROM` index to `SCHEMA_VERSION` in place,
    /// in one `BEGIN IMMEDIATE` transaction (so no other connection writes
    /// meanwhile; the version is read again inside it, since another process
    /// may have migrated first). Every row is kept, the stat cache too; a
    /// crash before the commit leaves the old schema, migrated next time.
    /// The space the old tables held is then given back by `VACUUM` when no
    /// other connection is reading the file; otherwise SQLite reuses those
    /// free pages for new rows.
    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let err = |cause| Error::Index {
            path: path.clone(),
            cause,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let v: String = tx
            .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
                r.get(0)
            })
            .map_err(err)?;
        let found = v.parse::<i64>().ok();
        if found == Some(MIGRATES_FROM) {
            tx.execute_batch(MIGRATE_V3).map_err(err)?;
            crate::store::failpoint::hit("index:mid-migration");
        } else if found != Some(SCHEMA_VERSION) {
            return Err(Error::corrupt(
                "index",
                format!("schema version {v} appeared while migrating from {MIGRATES_FROM}"),
            ));
        }
        tx.commit().map_err(err)?;
        let _ = self.conn.execute_batch("VACUUM");
        Ok(())
    }

    fn create_schema(&self) -> Result<()> {
        let err = |cause| Error::Index {
            path: self.path.clone(),
            cause,
        };
        let tx = self.conn.unchecked_transaction().map_err(err)?;
        tx.execute_batch(SCHEMA).map_err(err)?;
        tx.execute(
            "INSERT INTO meta VALUES('schema', ?1)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn sql(&self) -> Sql<'_> {
        Sql {
            conn: &self.conn,
            path: &self.path,
        }
    }

    /// Runs `f` inside one transaction: the commit point of every writer.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.transaction_with(rusqlite::TransactionBehavior::Deferred, f)
    }

    /// Runs `f` inside one transaction that holds SQLite's write lock from
    /// its start, so no other process's index transaction runs between
    /// what `f` reads and what it writes (the sync's re-checks).
    pub fn transaction_immediate<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.transaction_with(rusqlite::TransactionBehavior::Immediate, f)
    }

    fn transaction_with<T>(
        &mut self,
        behavior: rusqlite::TransactionBehavior,
        f: impl FnOnce(&Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        let path = self.path.clone();
        let err = |cause| Error::Index {
            path: path.clone(),
            cause,
        };
        let tx = self.conn.transaction_with_behavior(behavior).map_err(err)?;
        let out = f(&Tx {
            sql: Sql {
                conn: &tx,
                path: &path,
            },
        })?;
        tx.commit().map_err(err)?;
        Ok(out)
    }

    /// Where blob `id` of `kind` is: of several copies, the one in the pack
    /// with the smallest id (as `blobs` answers).
    pub fn blob(&self, id: &ChunkId, kind: PackKind) -> Result<Option<BlobLoc>> {
        self.sql()
            .row(
                "SELECT p.id, b.codec, b.offset, b.stored_len, b.raw_len, b.base \
                 FROM blobs b JOIN packs p ON p.num = b.pack \
                 WHERE b.id=?1 AND b.kind=?2 ORDER BY p.id LIMIT 1",
                params![&id.0[..], kind_code(kind)],
                location_row,
            )?
            .map(blob_loc)
            .transpose()
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
                "SELECT p.id, b.codec, b.offset, b.stored_len, b.raw_len, b.base, b.id \
                 FROM blobs b JOIN packs p ON p.num = b.pack \
                 WHERE b.kind=?1 AND b.id IN ({}) ORDER BY b.id, p.id",
                vec!["?"; part.len()].join(",")
            );
            let mut args: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(part.len() + 1);
            args.push(&kind);
            args.extend(part.iter().map(|id| &id.0 as &dyn rusqlite::ToSql));
            let rows = self.sql().rows(&sql, &args[..], |r| {
                Ok((location_row(r)?, r.get::<_, Vec<u8>>(6)?))
            })?;
            for (loc, id) in rows {
                let id = ChunkId::from_slice(&id)
                    .ok_or_else(|| Error::corrupt("index", "bad id in blobs table"))?;
                out.entry(id).or_insert(blob_loc(loc)?);
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
        Ok(self
            .sql()
            .row(
                "SELECT 1 FROM blobs WHERE id=?1 AND kind=?2 LIMIT 1",
                params![&id.0[..], kind_code(kind)],
                |_| Ok(()),
            )?
            .is_some())
    }

    pub fn pack_ids(&self) -> Result<HashSet<PackId>> {
        let ids = self
            .sql()
            .rows("SELECT id FROM packs", [], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(ids.iter().filter_map(|id| PackId::from_slice(id)).collect())
    }

    /// `(pack id, kind, size)` of every indexed pack.
    pub fn packs(&self) -> Result<Vec<(PackId, PackKind, u64)>> {
        let rows = self
            .sql()
            .rows("SELECT id, kind, size FROM packs", [], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, u8>(1)?,
                    r.get::<_, u64>(2)?,
                ))
            })?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, kind, size)| {
                Some((PackId::from_slice(&id)?, PackKind::from_u8(kind)?, size))
            })
            .collect())
    }

    /// Every blob recorded in pack `id`, in offset order.
    pub fn blobs_in_pack(&self, id: &PackId) -> Result<Vec<PackEntry>> {
        let rows = self.sql().rows(
            "SELECT id, codec, offset, stored_len, raw_len, base FROM blobs \
             WHERE pack=(SELECT num FROM packs WHERE id=?1) ORDER BY offset",
            [&id.0[..]],
            location_row,
        )?;
        rows.into_iter()
            .map(|row| {
                let (blob, codec, offset, stored_len, raw_len, base) = decode_location(row)?;
                Ok(PackEntry {
                    id: ChunkId(blob),
                    codec,
                    offset,
                    stored_len,
                    raw_len,
                    base,
                })
            })
            .collect()
    }

    pub fn snapshot_ids(&self) -> Result<HashSet<SnapshotId>> {
        let ids = self
            .sql()
            .rows("SELECT id FROM snapshots", [], |r| r.get::<_, Vec<u8>>(0))?;
        Ok(ids
            .iter()
            .filter_map(|id| SnapshotId::from_slice(id))
            .collect())
    }

    /// Every snapshot, oldest first (ties broken by id, so the order is total).
    /// The index is not trusted for this: each row's record must hash to its
    /// id, and the order is that of the records' own times, so an edited
    /// row can never make `latest` (or an id) name another snapshot; it is
    /// an error that says to run `snap reindex`.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let rows = self
            .sql()
            .rows("SELECT id, record FROM snapshots", [], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
        let mut out = rows
            .into_iter()
            .map(|(id, rec)| {
                let id = SnapshotId::from_slice(&id)
                    .filter(|id| SnapshotId::of(&rec) == *id)
                    .ok_or_else(|| {
                        Error::corrupt(
                            format!("index {}", self.path.display()),
                            format!(
                                "a snapshot row does not match its record (id {}); \
                                 `snap reindex` rebuilds the index from the files",
                                hex_prefix(&id)
                            ),
                        )
                    })?;
                Ok((id, Snapshot::decode(&rec)?))
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|s| (s.1.time_ns, s.0));
        Ok(out)
    }

    /// How many snapshot rows hold a record that does not hash to their id
    /// (an edited or damaged index; a writer then rebuilds it).
    pub fn mismatched_snapshot_rows(&self) -> Result<usize> {
        Ok(self
            .snapshot_rows()?
            .iter()
            .filter(|r| SnapshotId::from_slice(&r.id) != Some(SnapshotId::of(&r.record)))
            .count())
    }

    /// Every snapshot row as stored, unchecked, for `snap check` to compare
    /// with the files: `(id, time_ns, session, epoch, workspace, record)`.
    pub fn snapshot_rows(&self) -> Result<Vec<SnapshotRow>> {
        self.sql().rows(
            "SELECT id, time_ns, session, epoch, workspace, record FROM snapshots ORDER BY id",
            [],
            |r| {
                Ok(SnapshotRow {
                    id: r.get(0)?,
                    time_ns: r.get(1)?,
                    session: r.get(2)?,
                    epoch: r.get(3)?,
                    workspace: r.get(4)?,
                    record: r.get(5)?,
                })
            },
        )
    }

    pub fn tags(&self) -> Result<Vec<(String, SnapshotId)>> {
        tag_rows(&self.sql())
    }

    /// Every stat cache row of `workspace`, by path, in one query (a commit
    /// looks up every file of its workspace). Rows whose chunk list does not
    /// decode are left out, as `stat_entry` leaves them.
    pub fn stat_entries(&self, workspace: &str) -> Result<HashMap<Vec<u8>, StatEntry>> {
        let rows = self.sql().rows(
            "SELECT path, size, mtime_ns, ctime_ns, inode, dev, mode, chunks FROM statcache \
             WHERE workspace=(SELECT num FROM workspaces WHERE path=?1)",
            [workspace],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    stat_meta(r, 1)?,
                    r.get::<_, Vec<u8>>(7)?,
                ))
            },
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(path, meta, chunks)| {
                let chunks = decode_chunk_list(&chunks)?;
                Some((path, StatEntry { meta, chunks }))
            })
            .collect())
    }

    pub fn stat_entry(&self, workspace: &str, path: &[u8]) -> Result<Option<StatEntry>> {
        let row = self.sql().row(
            "SELECT size, mtime_ns, ctime_ns, inode, dev, mode, chunks FROM statcache \
             WHERE workspace=(SELECT num FROM workspaces WHERE path=?1) AND path=?2",
            params![workspace, path],
            |r| Ok((stat_meta(r, 0)?, r.get::<_, Vec<u8>>(6)?)),
        )?;
        Ok(row.and_then(|(meta, chunks)| {
            Some(StatEntry {
                meta,
                chunks: decode_chunk_list(&chunks)?,
            })
        }))
    }

    /// `data_totals` per codec: `(codec, count, raw bytes, stored bytes)`,
    /// in codec order.
    pub fn data_totals_by_codec(&self) -> Result<Vec<(Codec, u64, u64, u64)>> {
        let rows = self.sql().rows(
            "SELECT codec, count(*), sum(raw_len), sum(stored_len) FROM \
             (SELECT codec, raw_len, stored_len FROM blobs WHERE kind=0 GROUP BY id) \
             GROUP BY codec ORDER BY codec",
            [],
            |r| Ok((r.get::<_, u8>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        rows.into_iter()
            .map(|(codec, n, raw, stored)| {
                let codec = Codec::from_u8(codec)
                    .ok_or_else(|| Error::corrupt("index", format!("unknown codec {codec}")))?;
                Ok((codec, n, raw, stored))
            })
            .collect()
    }

    /// Replaces every row of this index with those of the index at `path`
    /// (one `reindex` built), in one transaction: a reader or writer with
    /// the index open sees the old rows or the new ones, never a mix, an
    /// empty index or a missing file. (Renaming a new file over it would
    /// not do: connections that have it open keep its WAL and shared-memory
    /// files, which a new file at the same path would inherit.)
    pub fn replace_from(&mut self, path: &Path) -> Result<()> {
        let name = path.to_str().ok_or_else(|| {
            Error::invalid(
                "index path",
                path.display().to_string(),
                "is not UTF-8, which SQLite's ATTACH needs",
            )
        })?;
        self.sql().execute("ATTACH DATABASE ?1 AS fresh", [name])?;
        let copied = self.transaction(|tx| {
            for table in [
                "packs",
                "blobs",
                "snapshots",
                "tags",
                "workspaces",
                "statcache",
            ] {
                tx.sql.execute(&format!("DELETE FROM main.{table}"), [])?;
                tx.sql.execute(
                    &format!("INSERT INTO main.{table} SELECT * FROM fresh.{table}"),
                    [],
                )?;
            }
            Ok(())
        });
        let detached = self.sql().execute("DETACH DATABASE fresh", []);
        copied.and(detached)
    }

    /// Sums over indexed data blobs: `(count, raw bytes, stored bytes)`.
    pub fn data_totals(&self) -> Result<(u64, u64, u64)> {
        let totals = self.sql().row(
            "SELECT count(*), coalesce(sum(raw_len),0), coalesce(sum(stored_len),0) FROM \
             (SELECT raw_len, stored_len FROM blobs WHERE kind=0 GROUP BY id)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(totals.unwrap_or((0, 0, 0)))
    }
}

/// One `snapshots` row as stored (see `Index::snapshot_rows`).
#[derive(Clone, Debug)]
pub struct SnapshotRow {
    pub id: Vec<u8>,
    pub time_ns: i64,
    pub session: Option<String>,
    pub epoch: Option<i64>,
    pub workspace: String,
    pub record: Vec<u8>,
}

/// The first bytes of a stored id in hex, for messages about bad rows.
fn hex_prefix(id: &[u8]) -> String {
    id.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A `blobs` row selected as `(key, codec, offset, stored_len, raw_len,
/// base)`, where the key is the pack id or the blob id depending on the query.
type LocationRow = (Vec<u8>, u8, u64, u32, u32, Option<Vec<u8>>);

fn location_row(r: &Row<'_>) -> rusqlite::Result<LocationRow> {
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

/// The index file at `path` and the WAL and shared-memory files SQLite
/// keeps beside it.
fn files(path: &Path) -> [PathBuf; 3] {
    ["", "-wal", "-shm"].map(|suffix| PathBuf::from(format!("{}{}", path.display(), suffix)))
}

/// `path` for a SQLite URI filename: the characters a URI gives meaning to
/// are escaped.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        match b {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{b:02X}")),
            b if b.is_ascii() && !b.is_ascii_control() => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// True if `e` means the index could not be written or reached for writing
/// (a read-only file or mount, a full disk, permissions, I/O errors, busy):
/// a reader then works from a copy in memory.
pub fn cannot_write(e: &Error) -> bool {
    use rusqlite::ErrorCode::*;
    match e {
        Error::Index {
            cause: rusqlite::Error::SqliteFailure(f, _),
            ..
        } => matches!(
            f.code,
            ReadOnly
                | CannotOpen
                | DiskFull
                | SystemIoFailure
                | PermissionDenied
                | DatabaseBusy
                | DatabaseLocked
                | FileLockingProtocolFailed
        ),
        _ => false,
    }
}

/// True if `e` means the index file is unusable rather than unreachable:
/// corrupt, not a database, or of another schema.
pub fn is_damaged(e: &Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e {
        Error::Corrupt { .. } | Error::NewerIndex { .. } => true,
        Error::Index {
            cause: rusqlite::Error::SqliteFailure(f, _),
            ..
        } => {
            matches!(f.code, DatabaseCorrupt | NotADatabase)
        }
        _ => false,
    }
}

/// Every tag row, by name. A row whose id is not 32 bytes is skipped (the
/// sync then finds it differs from the files and rewrites it).
fn tag_rows(sql: &Sql<'_>) -> Result<Vec<(String, SnapshotId)>> {
    let rows = sql.rows("SELECT name, snapshot FROM tags ORDER BY name", [], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, id)| Some((name, SnapshotId::from_slice(&id)?)))
        .collect())
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
    sql: Sql<'a>,
}

impl Tx<'_> {
    pub fn insert_pack(&self, pack: &FinishedPack) -> Result<()> {
        self.sql.execute(
            "INSERT OR IGNORE INTO packs(id, kind, size) VALUES(?1, ?2, ?3)",
            params![&pack.id.0[..], kind_code(pack.kind), pack.size],
        )?;
        let num: i64 = self
            .sql
            .row("SELECT num FROM packs WHERE id=?1", [&pack.id.0[..]], |r| {
                r.get(0)
            })?
            .ok_or_else(|| Error::corrupt("index", "a pack row vanished as it was inserted"))?;
        for e in &pack.entries {
            self.sql.execute(
                "INSERT OR IGNORE INTO blobs VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    &e.id.0[..],
                    kind_code(pack.kind),
                    num,
                    e.codec as u8,
                    e.offset,
                    e.stored_len,
                    e.raw_len,
                    e.base.as_ref().map(|b| &b.0[..])
                ],
            )?;
        }
        Ok(())
    }

    pub fn delete_pack(&self, id: &PackId) -> Result<()> {
        self.sql.execute(
            "DELETE FROM blobs WHERE pack=(SELECT num FROM packs WHERE id=?1)",
            [&id.0[..]],
        )?;
        self.sql
            .execute("DELETE FROM packs WHERE id=?1", [&id.0[..]])
    }

    pub fn insert_snapshot(&self, id: &SnapshotId, snap: &Snapshot, record: &[u8]) -> Result<()> {
        self.sql.execute(
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
    }

    pub fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.sql
            .execute("DELETE FROM snapshots WHERE id=?1", [&id.0[..]])
    }

    /// The tags as this transaction sees them.
    pub fn tags(&self) -> Result<Vec<(String, SnapshotId)>> {
        tag_rows(&self.sql)
    }

    pub fn set_tag(&self, name: &str, id: &SnapshotId) -> Result<()> {
        self.sql.execute(
            "INSERT OR REPLACE INTO tags VALUES(?1, ?2)",
            params![name, &id.0[..]],
        )
    }

    pub fn replace_tags(&self, tags: &[(String, SnapshotId)]) -> Result<()> {
        self.sql.execute("DELETE FROM tags", [])?;
        for (name, id) in tags {
            self.set_tag(name, id)?;
        }
        Ok(())
    }

    pub fn delete_tag(&self, name: &str) -> Result<()> {
        self.sql.execute("DELETE FROM tags WHERE name=?1", [name])
    }

    pub fn put_stat(&self, workspace: &str, path: &[u8], e: &StatEntry) -> Result<()> {
        let m = &e.meta;
        self.sql.execute(
            "INSERT OR IGNORE INTO workspaces(path) VALUES(?1)",
            [workspace],
        )?;
        self.sql.execute(
            "INSERT OR REPLACE INTO statcache VALUES((SELECT num FROM workspaces WHERE path=?1), \
             ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                workspace,
                path,
                m.size as i64,
                m.mtime_ns,
                m.ctime_ns,
                m.inode as i64,
                m.dev as i64,
                m.mode,
                encode_chunk_list(&e.chunks)
            ],
        )
    }

    pub fn delete_stat(&self, workspace: &str, path: &[u8]) -> Result<()> {
        self.sql.execute(
            "DELETE FROM statcache \
             WHERE workspace=(SELECT num FROM workspaces WHERE path=?1) AND path=?2",
            params![workspace, path],
        )
    }

    pub fn clear_statcache(&self) -> Result<()> {
        self.sql.execute("DELETE FROM statcache", [])
    }
}

/// The `Meta` of a stat cache row whose size, mtime_ns, ctime_ns, inode,
/// dev and mode columns start at column `first`.
fn stat_meta(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Meta> {
    Ok(Meta {
        size: r.get::<_, i64>(first)? as u64,
        mtime_ns: r.get(first + 1)?,
        ctime_ns: r.get(first + 2)?,
        inode: r.get::<_, i64>(first + 3)? as u64,
        dev: r.get::<_, i64>(first + 4)? as u64,
        mode: r.get(first + 5)?,
    })
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

    /// A stat cache row comes back as it was put, per workspace and path;
    /// totals over an empty index are zero.
    #[test]
    fn stat_entries_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (mut index, created) = Index::open(&dir.path().join("index.sqlite")).unwrap();
        assert!(created);
        assert_eq!(index.data_totals().unwrap(), (0, 0, 0));
        let entry = StatEntry {
            meta: Meta {
                size: 1 << 40,
                mtime_ns: -5,
                ctime_ns: 1_700_000_000_123_456_789,
                inode: u64::MAX >> 1,
                dev: 66306,
                mode: 0o644,
            },
            chunks: vec![ChunkRef {
                id: ChunkId::of(b"c"),
                len: 7,
            }],
        };
        index
            .transaction(|tx| tx.put_stat("/ws", b"a/b.bin", &entry))
            .unwrap();
        index
            .transaction(|tx| tx.put_stat("/other", b"c", &entry))
            .unwrap();
        assert_eq!(
            index.stat_entry("/ws", b"a/b.bin").unwrap(),
            Some(entry.clone())
        );
        assert_eq!(index.stat_entry("/other", b"a/b.bin").unwrap(), None);
        let all = index.stat_entries("/ws").unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[&b"a/b.bin"[..]], entry);
        index
            .transaction(|tx| tx.delete_stat("/ws", b"a/b.bin"))
            .unwrap();
        assert_eq!(index.stat_entry("/ws", b"a/b.bin").unwrap(), None);
        assert!(index.stat_entries("/ws").unwrap().is_empty());
        assert_eq!(index.stat_entries("/other").unwrap().len(), 1);
    }
}
