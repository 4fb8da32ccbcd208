//! `ObjectStoreBackend`: a repository's objects on object storage, through
//! the `object_store` crate (S3 and S3-compatible servers, local
//! directories). The objects keep the names they have in a local
//! repository (`config`, `packs/XX/ID.pack`, `snapshots/ID`, `journal/ID`,
//! `refs/tags/NAME`), below the URL's prefix (docs/remotes.md).
//!
//! The library is synchronous; object_store is async. The backend owns a
//! small private tokio runtime (two workers) and blocks on it inside each
//! call, so nothing async leaves this module. Calls may come from many
//! threads at once (restore reads ranges on rayon): `Runtime::block_on` on a
//! multi-thread runtime allows that.
//!
//! How the `Backend` contract maps onto a store:
//!
//! - `put` is `PutMode::Create` (`If-None-Match: *` on S3): objects are
//!   content-addressed, so an `AlreadyExists` is success. A store that
//!   cannot create conditionally gets a plain put, which for the same
//!   content is the same.
//! - `upload` buffers up to one part (8 MiB); a smaller object is one put at
//!   `finish`. A larger one is a multipart upload with at most two parts in
//!   flight (memory: three parts), invisible until completed. Its name is
//!   known in advance when copying a pack (`upload_as`); otherwise it goes
//!   to `tmp/upload-RANDOM` and is copied into place at `finish`.
//! - Tags are moved with `put_tag_if` (`PutMode::Update` with the e-tag
//!   read before: `If-Match` on S3). A store without conditional updates
//!   (the local file system) gets a read, compare and overwrite: two writers
//!   racing on one tag within that window may both succeed, the later
//!   winning. The plain `replace` of the trait overwrites.
//! - `delete` is durable on return; `sync` has nothing to do.
//!
//! Retries of transient errors are object_store's (`RetryConfig`, with
//! backoff); an answer that says no (credentials, a missing bucket) is an
//! `Error::Remote` at once, saying what to check. Nothing read here is
//! trusted: blobs go through `store::read::decode_verified` like local ones,
//! pulled packs are checked against their name (`ops::remote::pull`).
//! Credentials come from the environment (`AmazonS3Builder::from_env`), then
//! the AWS profile files (`aws_profile`), and
//! are never written or printed: `Debug` and every message show the URL only.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
    UpdateVersion, WriteMultipart,
};

use super::aws_profile;
use super::local::object_path;
use super::{Backend, Kind, Object, Upload};
use crate::error::{Error, Result};
use crate::id::PackId;

/// Multipart part size, and the largest object sent with one put.
const PART: usize = 8 << 20;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Where a remote is: the URL forms snap understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteUrl {
    /// `s3://BUCKET/PREFIX` (the prefix may be empty).
    S3 { bucket: String, prefix: String },
    /// `gs://BUCKET/PREFIX`: Google Cloud Storage.
    Gcs { bucket: String, prefix: String },
    /// `az://CONTAINER/PREFIX`: Azure Blob Storage, the account from
    /// `AZURE_STORAGE_ACCOUNT_NAME`.
    Azure { container: String, prefix: String },
    /// `file:///ABSOLUTE/PATH`.
    File { path: PathBuf },
}

/// `BUCKET/PREFIX` after a scheme: the bucket (or container) and the
/// prefix, checked.
fn bucket_and_prefix(url: &str, rest: &str, forms: &str) -> Result<(String, String)> {
    let bad = |why: &str| Err(Error::invalid("remote URL", url, why));
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return bad(&format!("no bucket; {forms}"));
    }
    let prefix = prefix.trim_matches('/').to_string();
    if prefix.split('/').any(|c| c == "." || c == "..") {
        return bad("'.' and '..' are not allowed in the prefix");
    }
    if ObjPath::parse(&prefix).is_err() {
        return bad("the prefix is not a valid object path");
    }
    Ok((bucket.to_string(), prefix))
}

impl RemoteUrl {
    /// Parses a remote URL: `s3://`, `gs://`, `az://` (object_store's
    /// `aws`, `gcp` and `azure`), `file://`.
    pub fn parse(url: &str) -> Result<RemoteUrl> {
        let bad = |why: &str| Err(Error::invalid("remote URL", url, why));
        let forms = "use s3://BUCKET/PREFIX (S3 and S3-compatible servers, \
                     with AWS_ENDPOINT_URL), gs://BUCKET/PREFIX, az://CONTAINER/PREFIX \
                     or file:///ABSOLUTE/PATH";
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix(url, rest, forms)?;
            return Ok(RemoteUrl::S3 { bucket, prefix });
        }
        if let Some(rest) = url.strip_prefix("gs://") {
            let (bucket, prefix) = bucket_and_prefix(url, rest, forms)?;
            return Ok(RemoteUrl::Gcs { bucket, prefix });
        }
        if let Some(rest) = url.strip_prefix("az://") {
            let (container, prefix) = bucket_and_prefix(url, rest, forms)?;
            return Ok(RemoteUrl::Azure { container, prefix });
        }
        if let Some(rest) = url.strip_prefix("file://") {
            let path = PathBuf::from(rest);
            if !path.is_absolute() {
                return bad(&format!("the path must be absolute; {forms}"));
            }
            return Ok(RemoteUrl::File { path });
        }
        if url.starts_with("abfs://") || url.starts_with("abfss://") {
            return bad(&format!(
                "Azure URLs are written az://CONTAINER/PREFIX here (the account from AZURE_STORAGE_ACCOUNT_NAME); {forms}"
            ));
        }
        bad(forms)
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            RemoteUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            RemoteUrl::Gcs { bucket, prefix } if prefix.is_empty() => write!(f, "gs://{bucket}"),
            RemoteUrl::Gcs { bucket, prefix } => write!(f, "gs://{bucket}/{prefix}"),
            RemoteUrl::Azure { container, prefix } if prefix.is_empty() => {
                write!(f, "az://{container}")
            }
            RemoteUrl::Azure { container, prefix } => write!(f, "az://{container}/{prefix}"),
            RemoteUrl::File { path } => write!(f, "file://{}", path.display()),
        }
    }
}

/// What a backend sent and fetched, for reports and tests.
#[derive(Debug, Default)]
pub struct Traffic {
    pub requests: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub bytes_sent: AtomicU64,
}

impl Traffic {
    fn fetched(&self, n: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_fetched.fetch_add(n, Ordering::Relaxed);
    }

    fn sent(&self, n: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// (requests, bytes fetched, bytes sent) so far.
    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.bytes_fetched.load(Ordering::Relaxed),
            self.bytes_sent.load(Ordering::Relaxed),
        )
    }
}

/// A tag as read from a remote, with the version a conditional update
/// names.
#[derive(Clone, Debug)]
pub struct Versioned {
    pub bytes: Vec<u8>,
    version: UpdateVersion,
}

/// The packs of a remote with their last write times (Unix ns), and the
/// packs marked for deletion (`ObjectStoreBackend::list_packs_and_marks`).
pub type PacksAndMarks = (Vec<(PackId, i64)>, HashSet<PackId>);

/// The outcome of a conditional tag write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagWrite {
    Written,
    /// Someone else wrote the tag since it was read: nothing was written.
    Conflict,
}

/// The shared part of a backend: its objects hold it too.
struct Shared {
    url: RemoteUrl,
    store: Arc<dyn ObjectStore>,
    prefix: Vec<String>,
    rt: tokio::runtime::Runtime,
    traffic: Traffic,
    /// False once the store said it cannot `PutMode::Create`.
    create_supported: AtomicBool,
}

impl Shared {
    fn key(&self, kind: Kind, name: &str) -> ObjPath {
        let rel = object_path(Path::new(""), kind, name);
        self.join(&rel.to_string_lossy())
    }

    fn join(&self, rel: &str) -> ObjPath {
        ObjPath::from_iter(
            self.prefix
                .iter()
                .map(String::as_str)
                .chain(rel.split('/').filter(|c| !c.is_empty())),
        )
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn describe(&self, key: &ObjPath) -> String {
        let rel: Vec<_> = key.parts().skip(self.prefix.len()).collect();
        let rel: Vec<&str> = rel.iter().map(|p| p.as_ref()).collect();
        if rel.is_empty() {
            return self.url.to_string();
        }
        format!("{}/{}", self.url, rel.join("/"))
    }

    /// Maps an object_store error on `key` to ours: not found stays an I/O
    /// `NotFound` (so `is_not_found` holds), a refusal gets a hint.
    fn error(&self, op: &'static str, key: &ObjPath, e: object_store::Error) -> Error {
        remote_error(&self.url, op, &self.describe(key), e)
    }
}

fn remote_error(url: &RemoteUrl, op: &'static str, what: &str, e: object_store::Error) -> Error {
    use object_store::Error as E;
    let text = e.to_string();
    let hint = match &e {
        E::NotFound { .. } if text.contains("NoSuchBucket") => missing_bucket(url),
        E::NotFound { .. } => {
            return Error::Io {
                op,
                path: PathBuf::from(what),
                cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
            }
        }
        E::Unauthenticated { .. } | E::PermissionDenied { .. } => credentials(url),
        _ if text.contains("NoSuchBucket") || text.contains("ContainerNotFound") => {
            missing_bucket(url)
        }
        _ if text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch")
            || text.contains("AccessDenied") =>
        {
            credentials(url)
        }
        _ if unreachable(&text) => format!(
            "\n  {url} did not answer, also after retrying (SNAP_REMOTE_RETRIES, SNAP_REMOTE_RETRY_SECS); check the network and the endpoint, then run the command again: it resumes, sending only what is missing"
        ),
        _ => String::new(),
    };
    Error::Remote {
        op,
        what: what.to_string(),
        cause: text,
        hint,
    }
}

/// Whether an error says the server could not be reached or stopped
/// answering (as opposed to an answer that says no).
fn unreachable(text: &str) -> bool {
    [
        "error sending request",
        "Connection refused",
        "connection closed",
        "connection reset",
        "timed out",
        "max_retries",
    ]
    .iter()
    .any(|m| text.contains(m))
}

fn missing_bucket(url: &RemoteUrl) -> String {
    format!("\n  the bucket of {url} does not exist: create it, or fix the remote's URL (`snap remote remove NAME`, then `snap remote add NAME URL`)")
}

fn credentials(url: &RemoteUrl) -> String {
    let check = match url {
        RemoteUrl::Gcs { .. } => "GOOGLE_SERVICE_ACCOUNT or GOOGLE_APPLICATION_CREDENTIALS (a service account key file)",
        RemoteUrl::Azure { .. } => "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_KEY)",
        _ => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_REGION, AWS_ENDPOINT_URL for an S3-compatible server; or AWS_PROFILE)",
    };
    format!("\n  {url} refused the credentials: check {check}")
}

/// Retries of one request, and the time they may take, when the
/// environment does not say: object_store's backoff from 100 ms doubling to
/// 15 s fits six retries in two minutes.
const MAX_RETRIES: usize = 6;
const RETRY_SECS: u64 = 120;

/// The retry budget: `SNAP_REMOTE_RETRIES` (retries of one request) and
/// `SNAP_REMOTE_RETRY_SECS` (the most time they may take) override the
/// defaults, for a flaky link (more) or a test that cuts the server (less).
fn retry_budget() -> Result<(usize, u64)> {
    fn var<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T> {
        match std::env::var(name) {
            Err(_) => Ok(default),
            Ok(v) => v.trim().parse().map_err(|_| {
                Error::invalid(
                    name,
                    v.clone(),
                    "must be a whole number (retries, or seconds)",
                )
            }),
        }
    }
    Ok((
        var("SNAP_REMOTE_RETRIES", MAX_RETRIES)?,
        var("SNAP_REMOTE_RETRY_SECS", RETRY_SECS)?,
    ))
}

/// A repository's objects in an object store (see the module doc).
#[derive(Clone)]
pub struct ObjectStoreBackend {
    shared: Arc<Shared>,
}

impl fmt::Debug for ObjectStoreBackend {
    /// The URL only: the store's own `Debug` may show credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectStoreBackend({})", self.shared.url)
    }
}

impl ObjectStoreBackend {
    /// Connects to the remote at `url`. S3 settings come from the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...). With
    /// `create`, a `file://` directory is created if missing (for a push).
    /// Nothing is sent yet.
    pub fn connect(url: &RemoteUrl, create: bool) -> Result<Self> {
        let (max_retries, retry_secs) = retry_budget()?;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries,
            retry_timeout: Duration::from_secs(retry_secs),
        };
        // A store the environment does not configure: say what to set.
        let refused = |hint: &str| {
            let hint = format!("\n  {hint}");
            move |e: object_store::Error| Error::Remote {
                op: "configure",
                what: url.to_string(),
                cause: e.to_string(),
                hint,
            }
        };
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match url {
            RemoteUrl::S3 { bucket, prefix } => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry);
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let profile = aws_profile::load(&env)?.unwrap_or_default();
                // The environment wins over the profile, as for the AWS CLI.
                if env("AWS_ACCESS_KEY_ID").is_none() {
                    if let (Some(id), Some(secret)) =
                        (&profile.access_key_id, &profile.secret_access_key)
                    {
                        b = b.with_access_key_id(id).with_secret_access_key(secret);
                        if let Some(t) = &profile.session_token {
                            b = b.with_token(t);
                        }
                    }
                }
                if env("AWS_ENDPOINT_URL").is_none() && env("AWS_ENDPOINT").is_none() {
                    if let Some(url) = &profile.endpoint_url {
                        // A plain-http endpoint written in the profile is asked for.
                        b = b
                            .with_endpoint(url)
                            .with_allow_http(url.starts_with("http://"));
                    }
                }
                if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() {
                    b = b.with_region(profile.region.as_deref().unwrap_or("us-east-1"));
                }
                let s3 = b
                    .build()
                    .map_err(refused("check the AWS_* environment variables"))?;
                (Arc::new(s3), prefix.clone())
            }
            RemoteUrl::Gcs { bucket, prefix } => {
                let gcs = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry)
                    .build()
                    .map_err(refused("set GOOGLE_SERVICE_ACCOUNT (or GOOGLE_APPLICATION_CREDENTIALS) to a service account key file"))?;
                (Arc::new(gcs), prefix.clone())
            }
            RemoteUrl::Azure { container, prefix } => {
                let az = MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_retry(retry)
                    .build()
                    .map_err(refused("set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_KEY, or a service principal's AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID)"))?;
                (Arc::new(az), prefix.clone())
            }
            RemoteUrl::File { path } => {
                if create {
                    std::fs::create_dir_all(path)
                        .map_err(|e| Error::io("create remote directory", path, e))?;
                }
                let fs = LocalFileSystem::new_with_prefix(path).map_err(|e| Error::Remote {
                    op: "open",
                    what: url.to_string(),
                    cause: e.to_string(),
                    hint: "\n  check that the directory exists".into(),
                })?;
                (Arc::new(fs), String::new())
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("snap-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the remote I/O runtime", url.to_string(), e))?;
        Ok(ObjectStoreBackend {
            shared: Arc::new(Shared {
                url: url.clone(),
                store,
                prefix: prefix
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect(),
                rt,
                traffic: Traffic::default(),
                create_supported: AtomicBool::new(true),
            }),
        })
    }

    pub fn url(&self) -> &RemoteUrl {
        &self.shared.url
    }

    /// Requests and bytes so far.
    pub fn traffic(&self) -> &Traffic {
        &self.shared.traffic
    }

    /// Checks that the store answers (the bucket exists, the credentials
    /// are accepted) with one listing request, so a refusal is reported
    /// before any work.
    pub fn probe(&self) -> Result<()> {
        let s = &self.shared;
        let key = s.join("");
        s.traffic.request();
        let listed = s.block_on(s.store.list_with_delimiter(Some(&key)));
        match listed {
            Ok(_) => Ok(()),
            // An empty prefix of a local directory.
            Err(object_store::Error::NotFound { .. })
                if matches!(s.url, RemoteUrl::File { .. }) =>
            {
                Ok(())
            }
            Err(e) => Err(s.error("list", &key, e)),
        }
    }

    /// A tag as stored, with its version, or `None` if there is none.
    pub fn read_versioned(&self, kind: Kind, name: &str) -> Result<Option<Versioned>> {
        let s = &self.shared;
        let key = s.key(kind, name);
        let got = s.block_on(async {
            let r = s.store.get(&key).await?;
            let version = UpdateVersion {
                e_tag: r.meta.e_tag.clone(),
                version: r.meta.version.clone(),
            };
            Ok::<_, object_store::Error>((r.bytes().await?, version))
        });
        match got {
            Ok((bytes, version)) => {
                s.traffic.fetched(bytes.len() as u64);
                Ok(Some(Versioned {
                    bytes: bytes.to_vec(),
                    version,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => {
                s.traffic.request();
                Ok(None)
            }
            Err(e) => Err(s.error("read", &key, e)),
        }
    }

    /// Writes a tag if it is still as read: absent for `expected` `None`
    /// (`If-None-Match`), else unchanged since `expected` was read
    /// (`If-Match`). Where the store has no conditional update, the tag is
    /// read again and overwritten if its bytes are unchanged (see the
    /// module doc for the race this leaves).
    pub fn put_tag_if(
        &self,
        name: &str,
        bytes: &[u8],
        expected: Option<&Versioned>,
    ) -> Result<TagWrite> {
        let s = &self.shared;
        let key = s.key(Kind::Tag, name);
        let mode = match expected {
            None => PutMode::Create,
            Some(v) => PutMode::Update(v.version.clone()),
        };
        s.traffic.sent(bytes.len() as u64);
        let put = s.block_on(s.store.put_opts(
            &key,
            PutPayload::from(bytes.to_vec()),
            PutOptions::from(mode),
        ));
        match put {
            Ok(_) => Ok(TagWrite::Written),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(TagWrite::Conflict),
            Err(object_store::Error::NotImplemented { .. })
            | Err(object_store::Error::NotSupported { .. }) => {
                let now = self.read_versioned(Kind::Tag, name)?;
                let same = match (&now, expected) {
                    (None, None) => true,
                    (Some(n), Some(e)) => n.bytes == e.bytes,
                    _ => false,
                };
                if !same {
                    return Ok(TagWrite::Conflict);
                }
                self.replace(Kind::Tag, name, bytes)?;
                Ok(TagWrite::Written)
            }
            Err(e) => Err(s.error("write tag", &key, e)),
        }
    }

    /// Starts streaming an object whose name is known before its bytes (a
    /// pack copied from another repository): the multipart upload goes
    /// straight to its place, with no copy at the end. `finish` must be
    /// given the same name.
    pub fn upload_as(&self, kind: Kind, name: &str) -> Box<dyn Upload> {
        Box::new(RemoteUpload {
            shared: self.shared.clone(),
            kind,
            dest: Some(self.shared.key(kind, name)),
            buffer: Vec::new(),
            multipart: None,
        })
    }

    /// Every object below `dir`, with the time the store last wrote it
    /// (Unix nanoseconds, the store's clock).
    fn list_metas(&self, dir: &ObjPath) -> Result<Vec<(ObjPath, i64)>> {
        let s = &self.shared;
        s.traffic.request();
        let listed: std::result::Result<Vec<_>, _> =
            s.block_on(s.store.list(Some(dir)).try_collect());
        match listed {
            Ok(metas) => Ok(metas
                .into_iter()
                .map(|m| {
                    let ns = m.last_modified.timestamp_nanos_opt().unwrap_or(i64::MAX);
                    (m.location, ns)
                })
                .collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(s.error("list", dir, e)),
        }
    }

    /// `Backend::list` with each object's last write time (Unix ns, the
    /// store's clock).
    fn list_dated(&self, kind: Kind) -> Result<Vec<(String, i64)>> {
        let s = &self.shared;
        if kind == Kind::Config {
            return Ok(Vec::new());
        }
        let rel = object_path(Path::new(""), kind, "x");
        let dir_rel = match kind {
            // `packs/x/x.pack` -> `packs`
            Kind::Pack | Kind::Mark => "packs".to_string(),
            _ => rel
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let dir = s.join(&dir_rel);
        let depth = dir.parts().count();
        let mut out = Vec::new();
        for (key, ns) in self.list_metas(&dir)? {
            let parts: Vec<String> = key
                .parts()
                .skip(depth)
                .map(|p| p.as_ref().to_string())
                .collect();
            let name = match kind {
                Kind::Pack | Kind::Mark => {
                    let suffix = if kind == Kind::Pack {
                        ".pack"
                    } else {
                        ".doomed"
                    };
                    match parts.as_slice() {
                        [_, file] => file.strip_suffix(suffix).map(String::from),
                        _ => None,
                    }
                }
                Kind::Snapshot | Kind::Journal | Kind::Note => match parts.as_slice() {
                    [file] => Some(file.clone()),
                    _ => None,
                },
                Kind::Tag => Some(parts.join("/")),
                Kind::Config => None,
            };
            out.extend(name.map(|n| (n, ns)));
        }
        Ok(out)
    }

    /// The packs, with their last write times, and the packs that carry a
    /// deletion mark, from one listing of `packs/` (where both live): what
    /// a push settling with a remote prune and the prune itself need.
    pub fn list_packs_and_marks(&self) -> Result<PacksAndMarks> {
        let dir = self.shared.join("packs");
        let depth = dir.parts().count();
        let mut packs = Vec::new();
        let mut marks = HashSet::new();
        for (key, ns) in self.list_metas(&dir)? {
            let parts: Vec<_> = key.parts().skip(depth).collect();
            let [_, file] = parts.as_slice() else {
                continue;
            };
            let file = file.as_ref();
            if let Some(id) = file.strip_suffix(".pack").and_then(PackId::from_hex) {
                packs.push((id, ns));
            } else if let Some(id) = file.strip_suffix(".doomed").and_then(PackId::from_hex) {
                marks.insert(id);
            }
        }
        Ok((packs, marks))
    }

    /// The temporaries of uploads (`tmp/upload-*`: a pack copied into
    /// place whose temporary was not deleted, or one being written now),
    /// with their last write times.
    pub fn list_temporaries(&self) -> Result<Vec<(String, i64)>> {
        let dir = self.shared.join("tmp");
        let depth = dir.parts().count();
        Ok(self
            .list_metas(&dir)?
            .into_iter()
            .filter_map(|(key, ns)| {
                let parts: Vec<String> = key
                    .parts()
                    .skip(depth)
                    .map(|p| p.as_ref().to_string())
                    .collect();
                match parts.as_slice() {
                    [file] if file.starts_with("upload-") => Some((file.clone(), ns)),
                    _ => None,
                }
            })
            .collect())
    }

    /// Deletes temporary `name` (from `list_temporaries`).
    pub fn delete_temporary(&self, name: &str) -> Result<()> {
        let s = &self.shared;
        let key = s.join(&format!("tmp/{name}"));
        s.traffic.request();
        match s.block_on(s.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s.error("delete", &key, e)),
        }
    }

    /// Takes the remote lock `locks/NAME` by creating it with `body`
    /// (`If-None-Match: *`): `None` if taken, else the holder's body. A
    /// store that cannot create conditionally cannot lock: refused.
    pub fn take_lock(&self, name: &str, body: &[u8]) -> Result<Option<Vec<u8>>> {
        let s = &self.shared;
        let key = s.join(&format!("locks/{name}"));
        s.traffic.sent(body.len() as u64);
        let put = s.block_on(s.store.put_opts(
            &key,
            PutPayload::from(body.to_vec()),
            PutOptions::from(PutMode::Create),
        ));
        match put {
            Ok(_) => Ok(None),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => {
                // Shown, never parsed: at most its first 4 KiB are read.
                let got = s.block_on(async {
                    let size = s.store.head(&key).await?.size;
                    s.store.get_range(&key, 0..size.min(4096)).await
                });
                match got {
                    Ok(b) => Ok(Some(b.to_vec())),
                    // Released in between: say so as held by nobody known.
                    Err(object_store::Error::NotFound { .. }) => Ok(Some(Vec::new())),
                    Err(e) => Err(s.error("read lock", &key, e)),
                }
            }
            Err(e @ object_store::Error::NotImplemented { .. })
            | Err(e @ object_store::Error::NotSupported { .. }) => Err(Error::Remote {
                op: "lock",
                what: s.describe(&key),
                cause: e.to_string(),
                hint: "\n  this store cannot create an object only if it is absent, so no lock \
                       can be taken on it; nothing was changed"
                    .into(),
            }),
            Err(e) => Err(s.error("take lock", &key, e)),
        }
    }

    /// Releases (or breaks) the remote lock `locks/NAME`.
    pub fn drop_lock(&self, name: &str) -> Result<()> {
        let s = &self.shared;
        let key = s.join(&format!("locks/{name}"));
        s.traffic.request();
        match s.block_on(s.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s.error("release lock", &key, e)),
        }
    }

    /// Where the remote lock `locks/NAME` is, for messages.
    pub fn lock_location(&self, name: &str) -> String {
        let s = &self.shared;
        s.describe(&s.join(&format!("locks/{name}")))
    }
}

impl Backend for ObjectStoreBackend {
    fn locate(&self, kind: Kind, name: &str) -> PathBuf {
        let s = &self.shared;
        PathBuf::from(s.describe(&s.key(kind, name)))
    }

    /// An object store has no directories to create.
    fn create(&self) -> Result<()> {
        Ok(())
    }

    fn missing(&self) -> Option<String> {
        None
    }

    fn exists(&self, kind: Kind, name: &str) -> bool {
        let s = &self.shared;
        s.traffic.request();
        s.block_on(s.store.head(&s.key(kind, name))).is_ok()
    }

    fn list(&self, kind: Kind) -> Result<Vec<String>> {
        Ok(self.list_dated(kind)?.into_iter().map(|(n, _)| n).collect())
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let s = &self.shared;
        let key = s.key(kind, name);
        let got = s.block_on(async { s.store.get(&key).await?.bytes().await });
        match got {
            Ok(b) => {
                s.traffic.fetched(b.len() as u64);
                Ok(b.to_vec())
            }
            Err(e) => {
                s.traffic.request();
                Err(s.error("read", &key, e))
            }
        }
    }

    fn open(&self, kind: Kind, name: &str) -> Result<Arc<dyn Object>> {
        Ok(Arc::new(RemoteObject {
            shared: self.shared.clone(),
            key: self.shared.key(kind, name),
            size: std::sync::OnceLock::new(),
        }))
    }

    fn put(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<()> {
        put_whole(&self.shared, &self.shared.key(kind, name), bytes.to_vec())
    }

    fn replace(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<()> {
        let s = &self.shared;
        let key = s.key(kind, name);
        s.traffic.sent(bytes.len() as u64);
        s.block_on(s.store.put(&key, PutPayload::from(bytes.to_vec())))
            .map(|_| ())
            .map_err(|e| s.error("write", &key, e))
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<bool> {
        let s = &self.shared;
        let key = s.key(kind, name);
        if !self.exists(kind, name) {
            return Ok(false);
        }
        s.traffic.request();
        match s.block_on(s.store.delete(&key)) {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s.error("delete", &key, e)),
        }
    }

    /// Deletions are durable when `delete` returns.
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn upload(&self, kind: Kind) -> Result<Box<dyn Upload>> {
        Ok(Box::new(RemoteUpload {
            shared: self.shared.clone(),
            kind,
            dest: None,
            buffer: Vec::new(),
            multipart: None,
        }))
    }
}

/// One put of a whole write-once object: `PutMode::Create`, an existing
/// object being the same content.
fn put_whole(s: &Shared, key: &ObjPath, bytes: Vec<u8>) -> Result<()> {
    let len = bytes.len() as u64;
    let payload = PutPayload::from(bytes);
    s.traffic.sent(len);
    if s.create_supported.load(Ordering::Relaxed) {
        let put = s.block_on(s.store.put_opts(
            key,
            payload.clone(),
            PutOptions::from(PutMode::Create),
        ));
        match put {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => return Ok(()),
            Err(object_store::Error::NotImplemented { .. })
            | Err(object_store::Error::NotSupported { .. }) => {
                s.create_supported.store(false, Ordering::Relaxed);
            }
            Err(e) => return Err(s.error("write", key, e)),
        }
    }
    s.block_on(s.store.put(key, payload))
        .map(|_| ())
        .map_err(|e| s.error("write", key, e))
}

/// A remote object open for range reads. Its size is asked for (one HEAD)
/// only if needed.
struct RemoteObject {
    shared: Arc<Shared>,
    key: ObjPath,
    size: std::sync::OnceLock<u64>,
}

impl Object for RemoteObject {
    fn size(&self) -> Result<u64> {
        if let Some(n) = self.size.get() {
            return Ok(*n);
        }
        let s = &self.shared;
        s.traffic.request();
        let meta = s
            .block_on(s.store.head(&self.key))
            .map_err(|e| s.error("stat", &self.key, e))?;
        Ok(*self.size.get_or_init(|| meta.size))
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let s = &self.shared;
        if len == 0 {
            return Ok(Vec::new());
        }
        let end = offset
            .checked_add(len as u64)
            .ok_or_else(|| Error::corrupt(s.describe(&self.key), "offset out of range"))?;
        let got = s
            .block_on(s.store.get_range(&self.key, offset..end))
            .map_err(|e| s.error("read", &self.key, e))?;
        s.traffic.fetched(got.len() as u64);
        if got.len() != len {
            return Err(Error::Io {
                op: "read",
                path: PathBuf::from(s.describe(&self.key)),
                cause: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("asked for {len} bytes at {offset}, got {}", got.len()),
                ),
            });
        }
        Ok(got.to_vec())
    }
}

/// An object being streamed to a remote (see the module doc).
struct RemoteUpload {
    shared: Arc<Shared>,
    kind: Kind,
    /// The final key when known at the start; else a temporary key is used
    /// once the object outgrows one part.
    dest: Option<ObjPath>,
    buffer: Vec<u8>,
    /// The multipart upload and its key, once started.
    multipart: Option<(WriteMultipart, ObjPath)>,
}

impl RemoteUpload {
    fn start_multipart(&mut self) -> Result<()> {
        let s = &self.shared;
        let key = match &self.dest {
            Some(k) => k.clone(),
            None => s.join(&format!("tmp/upload-{}", random_name())),
        };
        s.traffic.request();
        let upload = s
            .block_on(s.store.put_multipart(&key))
            .map_err(|e| s.error("start upload of", &key, e))?;
        self.multipart = Some((WriteMultipart::new_with_chunk_size(upload, PART), key));
        Ok(())
    }
}

impl Upload for RemoteUpload {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.multipart.is_none() {
            if self.buffer.len() + bytes.len() <= PART {
                self.buffer.extend_from_slice(bytes);
                return Ok(());
            }
            self.start_multipart()?;
        }
        let s = self.shared.clone();
        let (w, key) = self.multipart.as_mut().expect("started above");
        s.block_on(w.wait_for_capacity(PARTS_IN_FLIGHT))
            .map_err(|e| s.error("upload", key, e))?;
        // Parts are spawned on the runtime: enter it.
        let _in_runtime = s.rt.enter();
        if !self.buffer.is_empty() {
            w.write(&std::mem::take(&mut self.buffer));
        }
        w.write(bytes);
        s.traffic
            .bytes_sent
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn finish(mut self: Box<Self>, name: &str) -> Result<()> {
        let s = self.shared.clone();
        let dest = s.key(self.kind, name);
        if let Some(known) = &self.dest {
            if *known != dest {
                return Err(Error::Other(format!(
                    "upload to {} finished as {}",
                    s.describe(known),
                    s.describe(&dest)
                )));
            }
        }
        let Some((w, key)) = self.multipart.take() else {
            return put_whole(&s, &dest, std::mem::take(&mut self.buffer));
        };
        s.traffic.request();
        s.block_on(w.finish())
            .map_err(|e| s.error("finish upload of", &key, e))?;
        if key != dest {
            s.traffic.request();
            s.block_on(s.store.copy(&key, &dest))
                .map_err(|e| s.error("copy into place", &dest, e))?;
            s.traffic.request();
            // A leftover temporary only costs space.
            let _ = s.block_on(s.store.delete(&key));
        }
        Ok(())
    }

    fn abandon(mut self: Box<Self>) {
        if let Some((w, _)) = self.multipart.take() {
            let _ = self.shared.block_on(w.abort());
        }
    }
}

/// A name for a temporary upload: no two writers pick the same.
fn random_name() -> String {
    let mut seed = [0u8; 16];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed));
    let h = blake3::hash(
        format!(
            "{seed:?}{:?}{}",
            std::time::SystemTime::now(),
            std::process::id()
        )
        .as_bytes(),
    );
    h.to_hex()[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print_back() {
        for (url, want) in [
            ("s3://bkt", "s3://bkt"),
            ("s3://bkt/", "s3://bkt"),
            ("s3://bkt/a/b/", "s3://bkt/a/b"),
            ("file:///srv/snap", "file:///srv/snap"),
        ] {
            assert_eq!(RemoteUrl::parse(url).unwrap().to_string(), want);
        }
        for bad in ["s3://", "file://rel/path", "http://x", "s3://b/../x"] {
            assert!(RemoteUrl::parse(bad).is_err(), "{bad}");
        }
        for (url, want) in [
            (
                "gs://bkt/a/",
                RemoteUrl::Gcs {
                    bucket: "bkt".into(),
                    prefix: "a".into(),
                },
            ),
            (
                "az://runs",
                RemoteUrl::Azure {
                    container: "runs".into(),
                    prefix: String::new(),
                },
            ),
        ] {
            let parsed = RemoteUrl::parse(url).unwrap();
            assert_eq!(parsed, want);
            assert_eq!(parsed.to_string(), url.trim_end_matches('/'));
        }
        for bad in [
            "gs://",
            "az:///x",
            "gs://b/../x",
            "abfs://c@acct.dfs.core.windows.net/p",
        ] {
            assert!(RemoteUrl::parse(bad).is_err(), "{bad}");
        }
    }

    /// Objects keep their local names under the prefix, and a listing
    /// gives back the names `put` was given.
    #[test]
    fn file_remote_keeps_local_names() {
        let dir = tempfile::tempdir().unwrap();
        let url = RemoteUrl::File {
            path: dir.path().join("remote"),
        };
        let b = ObjectStoreBackend::connect(&url, true).unwrap();
        b.put(Kind::Snapshot, "ab12", b"record").unwrap();
        b.put(Kind::Snapshot, "ab12", b"record").unwrap();
        b.replace(Kind::Tag, "run-1/best", b"id\n").unwrap();
        let mut up = b.upload(Kind::Pack).unwrap();
        up.write(&vec![7u8; PART + 10]).unwrap();
        up.finish("cdef").unwrap();
        assert!(dir.path().join("remote/snapshots/ab12").is_file());
        assert!(dir.path().join("remote/refs/tags/run-1/best").is_file());
        assert_eq!(
            std::fs::metadata(dir.path().join("remote/packs/cd/cdef.pack"))
                .unwrap()
                .len(),
            (PART + 10) as u64
        );
        assert_eq!(b.list(Kind::Pack).unwrap(), vec!["cdef"]);
        assert_eq!(b.list(Kind::Tag).unwrap(), vec!["run-1/best"]);
        let o = b.open(Kind::Pack, "cdef").unwrap();
        assert_eq!(o.read_at(PART as u64, 10).unwrap(), vec![7u8; 10]);
        assert!(o.read_at(PART as u64, 11).is_err());
        assert!(is_not_found_err(
            b.read(Kind::Snapshot, "ffff").unwrap_err()
        ));
        // Conditional tag writes: a stale expectation is a conflict.
        let v = b.read_versioned(Kind::Tag, "run-1/best").unwrap().unwrap();
        assert_eq!(
            b.put_tag_if("run-1/best", b"id2\n", Some(&v)).unwrap(),
            TagWrite::Written
        );
        assert_eq!(
            b.put_tag_if("run-1/best", b"id3\n", Some(&v)).unwrap(),
            TagWrite::Conflict
        );
        assert_eq!(
            b.put_tag_if("run-1/best", b"id3\n", None).unwrap(),
            TagWrite::Conflict
        );
    }

    fn is_not_found_err(e: Error) -> bool {
        super::super::is_not_found(&e)
    }
}
