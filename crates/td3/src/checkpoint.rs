//! Checkpoints: the complete state of a run in one file, so that a resumed run continues bit
//! for bit where the original would have gone.
//!
//! Layout: the 8-byte magic `DSTD3CKP`, a little-endian `u32` format version, a `u64` payload
//! length, the payload's CRC-32, then the payload (postcard-encoded: configuration, networks
//! with topologies, Adam state, targets, evolution controller, replay buffer, generator, loop
//! counters, evaluations, and the environment's exact state). A file is written to a temporary
//! name and renamed into place, so a crash never leaves a half-written checkpoint. Both ways the
//! payload streams between the file and the run (the replay buffer is never held twice in
//! memory); reading checks its length and checksum.

use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::trainer::{State, Trainer};
use crate::{Config, Device, Error, Result};

const MAGIC: &[u8; 8] = b"DSTD3CKP";
/// 6: the critics' own sparsity; 5: the dynamic buffer (its setting, and the buffer's count of
/// stored transitions); 4: the SAC family (the actor's target optional, the entropy temperature)
/// and the sparsity setting; 3: the replay buffer stores each observation once, as `f32`, `f16`
/// or `bf16` (version 2 files store `s` and `s'` separately); 2: topology freeze and
/// per-connection bias correction (version 1 files predate them).
const VERSION: u32 = 6;
const HEADER: usize = 8 + 4 + 8 + 4;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Passes bytes through to a file while counting them and computing their CRC-32; keeps the
/// first write error (the encoder reports only that its output failed).
struct HashingWriter<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    len: u64,
    error: Option<std::io::Error>,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.len += n as u64;
                Ok(n)
            }
            Err(e) => {
                let copy = std::io::Error::new(e.kind(), e.to_string());
                self.error.get_or_insert(e);
                Err(copy)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `trainer`'s complete state to `path` (atomically), first syncing a GPU run's networks
/// to the host. The payload is streamed to disk, never held in memory as a whole.
pub fn save(trainer: &mut Trainer, path: &Path) -> Result<()> {
    trainer.sync_host()?;
    let tmp = path.with_extension("tmp");
    let written = write_to(trainer, &tmp).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    });
    if written.is_err() {
        // Nothing half-written stays behind; the previous checkpoint is untouched.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes the checkpoint file `tmp` (header, then the streamed payload) and syncs it.
fn write_to(trainer: &Trainer, tmp: &Path) -> Result<()> {
    let mut file = std::fs::File::create(tmp).map_err(io(tmp))?;
    file.write_all(&[0u8; HEADER]).map_err(io(tmp))?;
    let mut writer = HashingWriter {
        inner: std::io::BufWriter::new(&mut file),
        hasher: crc32fast::Hasher::new(),
        len: 0,
        error: None,
    };
    if let Err(e) = postcard::to_io(&trainer.state(), &mut writer) {
        return Err(match writer.error.take() {
            // The file could not take the bytes (a full disk, a quota, an I/O error).
            Some(source) => Error::Io {
                path: tmp.to_path_buf(),
                source,
            },
            None => Error::Checkpoint(format!("cannot encode the run state: {e}")),
        });
    }
    writer.flush().map_err(io(tmp))?;
    let (len, crc) = (writer.len, writer.hasher.clone().finalize());
    drop(writer);
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&len.to_le_bytes());
    header.extend_from_slice(&crc.to_le_bytes());
    file.seek(std::io::SeekFrom::Start(0)).map_err(io(tmp))?;
    file.write_all(&header).map_err(io(tmp))?;
    file.sync_all().map_err(io(tmp))
}

/// Passes bytes through from a file while computing their CRC-32.
struct HashingReader<R> {
    inner: R,
    hasher: crc32fast::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Scratch space of the streaming decoder: it holds one string (a task's name) or one number at
/// a time, never the replay buffer.
const SCRATCH: usize = 64 * 1024;

/// Reads the checkpoint at `path`, decoding the payload as it streams from the file (so that a
/// full replay buffer is never in memory twice) and checking its length and checksum.
fn decode(path: &Path) -> Result<State> {
    let bad = |m: &str| Err(Error::Checkpoint(m.to_string()));
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let size = file.metadata().map_err(io(path))?.len();
    let mut header = Vec::with_capacity(HEADER);
    (&mut file)
        .take(HEADER as u64)
        .read_to_end(&mut header)
        .map_err(io(path))?;
    if header.len() < MAGIC.len() || &header[..MAGIC.len()] != MAGIC {
        return bad("not a ds-td3 checkpoint (bad magic)");
    }
    if header.len() < HEADER {
        return Err(Error::Checkpoint(format!(
            "truncated ({size} bytes; the header alone has {HEADER})"
        )));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        let why = if version < VERSION {
            " (written by an older build; resume it with that build, or start the run again)"
        } else {
            " (written by a newer build)"
        };
        return Err(Error::Checkpoint(format!(
            "format version {version}, this build reads version {VERSION}{why}"
        )));
    }
    let len = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(header[20..24].try_into().expect("4 bytes"));
    if size.checked_sub(HEADER as u64) != Some(len) {
        return bad("truncated or padded (payload length does not match the header)");
    }
    let mut reader = HashingReader {
        inner: std::io::BufReader::new(file),
        hasher: crc32fast::Hasher::new(),
    };
    let mut scratch = vec![0u8; SCRATCH];
    let decoded = postcard::from_io((&mut reader, &mut scratch[..])).map(|(state, _)| state);
    // The checksum covers the whole payload, decoded or not: a corrupt file is reported as such
    // rather than by whatever the decoder tripped over.
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(io(path))?;
    if reader.hasher.finalize() != crc {
        return bad("corrupt (checksum mismatch)");
    }
    decoded.map_err(|e| Error::Checkpoint(format!("cannot decode: {e}")))
}

/// Restores a run from `path`, running on `threads` threads, on `device` when given (else on the
/// run's own device). When `expected` is given, the checkpoint must belong to a run with that
/// configuration (thread count, device and total steps aside: a run extended by
/// [`Trainer::set_total_steps`] keeps its checkpoints until the next one is written).
pub fn load(
    path: &Path,
    threads: usize,
    device: Option<Device>,
    expected: Option<&Config>,
) -> Result<Trainer> {
    let state = decode(path)?;
    if let Some(want) = expected {
        let mut have = state.config.clone();
        have.threads = want.threads;
        have.device = want.device;
        have.steps = want.steps;
        if &have != want {
            return Err(Error::Checkpoint(format!(
                "{} belongs to another run (its configuration differs from this run's)",
                path.display()
            )));
        }
    }
    Trainer::from_state(state, threads, device)
}
