//! Evidence: read-only access to input files.
//!
//! Every input (the hive, every file on the image's volumes) comes through here, so that one
//! place guarantees the forensic rules: files are opened read-only, without updating their
//! access time where the OS allows it, and nothing is ever written beside them. Files are
//! memory-mapped so that a reader touches only the pages it needs.

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use sha2::{Digest, Sha256};

/// The bytes of one input file: a read-only private mapping, or an owned buffer for files that
/// cannot be mapped (empty files; later, `--no-mmap`).
pub struct Evidence {
    path: PathBuf,
    bytes: Bytes,
}

enum Bytes {
    Mapped(Mmap),
    /// Owned bytes, kept in 8-byte units so that parsers that need aligned input (pelite needs
    /// 4-byte alignment) can use them as they use a mapping.
    Owned {
        words: Vec<u64>,
        len: usize,
    },
}

impl Evidence {
    /// Opens `path` read-only and maps it.
    pub fn open(path: &Path) -> io::Result<Evidence> {
        let file = open_read_only(path)?;
        let len = file.metadata()?.len();
        let bytes = if len == 0 {
            Bytes::Owned {
                words: Vec::new(),
                len: 0,
            }
        } else {
            // SAFETY: the map is private and read-only. Its contents can still change if another
            // process truncates or rewrites the file while we hold it (SIGBUS on truncation);
            // evidence is expected to be at rest, and the README says so.
            Bytes::Mapped(unsafe { Mmap::map(&file)? })
        };
        Ok(Evidence {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// Wraps bytes that are already in memory (a replayed hive, test data).
    pub fn from_vec(path: PathBuf, data: Vec<u8>) -> Evidence {
        let len = data.len();
        let mut words = vec![0u64; len.div_ceil(8)];
        for (word, chunk) in words.iter_mut().zip(data.chunks(8)) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_ne_bytes(buf);
        }
        Evidence {
            path,
            bytes: Bytes::Owned { words, len },
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn sha256(&self) -> String {
        sha256_hex(self)
    }
}

impl Deref for Evidence {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(map) => map,
            Bytes::Owned { words, len } => {
                let all: &[u8] = bytemuck_words(words);
                &all[..*len]
            }
        }
    }
}

impl fmt::Debug for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evidence")
            .field("path", &self.path)
            .field("len", &self.len())
            .finish()
    }
}

fn bytemuck_words(words: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding and every bit pattern is a valid u8; the length is exact.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

/// Opens a file for reading only. On Linux it asks for `O_NOATIME` first, so that reading
/// evidence does not change its access time, and falls back to a plain read-only open when the
/// kernel refuses (O_NOATIME needs file ownership or CAP_FOWNER).
pub fn open_read_only(path: &Path) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(path)
        {
            Ok(file) => return Ok(file),
            Err(err) if err.raw_os_error() == Some(libc::EPERM) => {}
            Err(err) => return Err(err),
        }
    }
    std::fs::OpenOptions::new().read(true).open(path)
}

/// SHA-256 of a byte string, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        use fmt::Write;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_opens_as_empty_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let evidence = Evidence::open(&path).unwrap();
        assert!(evidence.is_empty());
    }

    #[test]
    fn owned_bytes_keep_exact_length_and_alignment() {
        let evidence = Evidence::from_vec(PathBuf::from("x"), b"abcdefghij".to_vec());
        assert_eq!(&evidence[..], b"abcdefghij");
        assert_eq!(evidence.as_ptr() as usize % 8, 0);
    }

    #[test]
    fn sha256_matches_known_digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn missing_file_is_an_error_not_a_panic() {
        assert!(Evidence::open(Path::new("/nonexistent/nextboot/x")).is_err());
    }
}
