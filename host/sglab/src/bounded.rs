//! Reading input files with bounds: an experiment or dataset file must be a
//! regular file or a pipe (so `<(...)` process substitution works), and is
//! read up to a size cap, so `/dev/zero`, `/dev/urandom` or a runaway
//! generator ends in one clear error instead of filling memory.

use std::io::Read as _;
use std::os::unix::fs::FileTypeExt as _;
use std::path::Path;

/// The largest experiment file read (16 MiB).
pub const EXPERIMENT_BYTES: u64 = 16 << 20;
/// The largest dataset file read (1 GiB).
pub const DATASET_BYTES: u64 = 1 << 30;

/// Reads `path` as UTF-8 text of at most `cap` bytes. The error says what
/// is wrong with the file (not its path: the caller names it).
pub fn read_text(path: &Path, cap: u64) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let t = meta.file_type();
    if t.is_dir() {
        return Err("is a directory".into());
    }
    if t.is_char_device() || t.is_block_device() || t.is_socket() {
        return Err("is not a regular file (a device or socket); give a file or a pipe".into());
    }
    if t.is_file() && meta.len() > cap {
        return Err(format!("is {} MiB, over the limit of {} MiB", meta.len() >> 20, cap >> 20));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|f| f.take(cap + 1).read_to_end(&mut bytes)).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > cap {
        return Err(format!("holds more than the limit of {} MiB", cap >> 20));
    }
    String::from_utf8(bytes).map_err(|e| format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_oversized_files_are_refused() {
        assert!(read_text(Path::new("/dev/zero"), 1 << 20).unwrap_err().contains("not a regular file"));
        assert!(read_text(Path::new("/dev/urandom"), 1 << 20).unwrap_err().contains("not a regular file"));
        assert_eq!(read_text(Path::new("/"), 1 << 20).unwrap_err(), "is a directory");
        let dir = std::env::temp_dir().join(format!("sglab-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("big.txt");
        std::fs::write(&f, vec![b'x'; 3 << 20]).unwrap();
        assert_eq!(read_text(&f, 2 << 20).unwrap_err(), "is 3 MiB, over the limit of 2 MiB");
        assert_eq!(read_text(&f, 4 << 20).unwrap().len(), 3 << 20);
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_text(&f, 1 << 20).unwrap_err().starts_with("is not UTF-8"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
