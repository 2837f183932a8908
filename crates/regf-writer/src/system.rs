//! A SYSTEM hive as the tests and benchmarks need it: `Select`, control sets with a Session
//! Manager key, and pending rename values written as MoveFileEx writes them.

use crate::regf::{self, HiveWriter, REG_DWORD, REG_MULTI_SZ};

pub const PFRO: &str = "PendingFileRenameOperations";
pub const PFRO2: &str = "PendingFileRenameOperations2";

/// Encodes a queue as MoveFileEx writes it: `source\0` then `destination\0` (with `!` for
/// replace) or an empty string for a delete, then one more NUL.
pub fn movefile_value<S: AsRef<str>, D: AsRef<str>>(pairs: &[(S, D)]) -> Vec<u8> {
    let mut text = String::new();
    for (source, destination) in pairs {
        text.push_str(source.as_ref());
        text.push('\0');
        text.push_str(destination.as_ref());
        text.push('\0');
    }
    text.push('\0');
    utf16(&text)
}

pub fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// A SYSTEM hive with `Select` and control sets.
pub struct SystemHiveSpec {
    pub writer: HiveWriter,
    /// Pending values set so far, to check them against hivex after writing.
    pending: Vec<(u32, String, Vec<u8>)>,
}

impl SystemHiveSpec {
    /// Select Current/Default/LastKnownGood = `set`, one control set `set` with a Session
    /// Manager key.
    pub fn new(set: u32) -> SystemHiveSpec {
        let mut spec = SystemHiveSpec {
            writer: HiveWriter::new("ROOT"),
            pending: Vec::new(),
        };
        spec.select(set, set, set);
        spec.control_set(set);
        spec
    }

    pub fn select(&mut self, current: u32, default: u32, last_known_good: u32) -> &mut Self {
        for (name, value) in [
            ("Current", current),
            ("Default", default),
            ("LastKnownGood", last_known_good),
            ("Failed", 0),
        ] {
            self.writer
                .value("Select", name, REG_DWORD, &value.to_le_bytes());
        }
        self
    }

    pub fn control_set(&mut self, set: u32) -> &mut Self {
        self.writer.key(&session_manager(set));
        self.writer.value(
            &format!("ControlSet{set:03}\\Control"),
            "SystemBootDevice",
            regf::REG_SZ,
            &regf::utf16z("multi(0)disk(0)rdisk(0)partition(2)"),
        );
        self
    }

    /// Sets a pending value of a control set to raw bytes.
    pub fn pending_raw(&mut self, set: u32, name: &str, bytes: &[u8]) -> &mut Self {
        self.writer
            .value(&session_manager(set), name, REG_MULTI_SZ, bytes);
        self.pending.retain(|(s, n, _)| !(*s == set && n == name));
        self.pending.push((set, name.to_string(), bytes.to_vec()));
        self
    }

    /// Sets `PendingFileRenameOperations` of a control set as MoveFileEx would.
    pub fn pending(&mut self, set: u32, pairs: &[(&str, &str)]) -> &mut Self {
        self.pending_raw(set, PFRO, &movefile_value(pairs))
    }

    /// [`SystemHiveSpec::pending`] for pairs built at run time.
    pub fn pending_owned(&mut self, set: u32, pairs: &[(String, String)]) -> &mut Self {
        self.pending_raw(set, PFRO, &movefile_value(pairs))
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.writer.to_bytes()
    }

    /// The pending values set so far (control set, name, bytes), last write of each.
    pub fn pending_values(&self) -> &[(u32, String, Vec<u8>)] {
        &self.pending
    }
}

fn session_manager(set: u32) -> String {
    format!("ControlSet{set:03}\\Control\\Session Manager")
}
