//! Values of one key of any hive (SOFTWARE's servicing configuration, COMPONENTS' root), read
//! through the same cell checks as the SYSTEM view, so that a damaged or hostile hive is an
//! error for that hive and never a panic.

use nt_hive::Hive;

use super::cells::Cells;
use super::{
    damaged, hive_bins_end, raw_value, structure, BaseBlock, CheckedKey, HiveError, RawValue,
    BASE_BLOCK_SIZE,
};

/// What one key holds of the values asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValues {
    pub key_found: bool,
    /// The values asked for that exist, in the order asked, names as asked.
    pub values: Vec<RawValue>,
}

impl KeyValues {
    /// The value `name` (compared ignoring ASCII case, as the registry does).
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.values
            .iter()
            .find(|v| v.name.eq_ignore_ascii_case(name))
    }
}

/// The values `names` of the key at `path` (components below the root; empty for the root's
/// own values) of the hive in `bytes`.
pub fn read_key_values(
    bytes: &[u8],
    path: &[&str],
    names: &[&str],
) -> Result<KeyValues, HiveError> {
    // As for SYSTEM: the checks keep nt-hive from panicking, the guard stays for what they
    // miss.
    crate::guard::contain(|| read_unguarded(bytes, path, names))
        .unwrap_or_else(|message| Err(HiveError::ReaderFailed { message }))
}

fn read_unguarded(bytes: &[u8], path: &[&str], names: &[&str]) -> Result<KeyValues, HiveError> {
    let base = BaseBlock::parse(bytes)?;
    let end = hive_bins_end(bytes, &base);
    let hive = Hive::without_validation(&bytes[..end]).map_err(structure("the base block"))?;
    let cells = Cells::new(&bytes[BASE_BLOCK_SIZE..end]);
    cells
        .key(base.root_cell_offset, "the root key")
        .map_err(damaged("the root key"))?;
    let mut key = CheckedKey::open(
        &cells,
        hive.root_key_node().map_err(structure("the root key"))?,
        Vec::new(),
        "the root key".into(),
    )?;
    for part in path {
        match key.subkey(&cells, part)? {
            Some(subkey) => key = subkey,
            None => return Ok(KeyValues::default()),
        }
    }
    let mut values = Vec::new();
    for name in names {
        let what = format!("{} value {name}", key.what);
        let wrap = |source| HiveError::Structure {
            what: what.clone(),
            source,
        };
        if let Some((raw, _)) = raw_value(&cells, &key, name, wrap, &what)? {
            values.push(raw);
        }
    }
    Ok(KeyValues {
        key_found: true,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nextboot_regf_writer::regf::{multi_sz, utf16, HiveWriter, REG_BINARY, REG_MULTI_SZ};

    const CONFIGURATION: [&str; 5] = [
        "Microsoft",
        "Windows",
        "CurrentVersion",
        "SideBySide",
        "Configuration",
    ];

    #[test]
    fn reads_a_key_deep_down_and_the_root() {
        let mut software = HiveWriter::new("ROOT");
        let command = multi_sz(&["poqexec.exe /display_progress \\??\\C:\\Users\\a\\pending.xml"]);
        software.value(
            "Microsoft\\Windows\\CurrentVersion\\SideBySide\\Configuration",
            "PoqexecCmdline",
            REG_MULTI_SZ,
            &command,
        );
        let bytes = software.to_bytes();
        let path = &CONFIGURATION[..];
        // Key names are found ignoring case, as Windows does.
        let upper: Vec<String> = path.iter().map(|p| p.to_uppercase()).collect();
        let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
        for path in [path, &upper[..]] {
            let read =
                read_key_values(&bytes, path, &["PoqexecCmdline", "DontRunPoqexecInSmss"]).unwrap();
            assert!(read.key_found);
            assert_eq!(read.values.len(), 1);
            let value = read.get("poqexeccmdline").unwrap();
            assert_eq!((value.data_type, &value.bytes), (REG_MULTI_SZ, &command));
        }
        let missing = read_key_values(&bytes, &["Microsoft", "Nothing"], &["x"]).unwrap();
        assert_eq!(missing, KeyValues::default());

        let mut components = HiveWriter::new("ROOT");
        let identifier = utf16("916ae75edb30da0146730000dc1be027");
        components.value("", "PendingXmlIdentifier", REG_BINARY, &identifier);
        let read = read_key_values(
            &components.to_bytes(),
            &[],
            &["PendingXmlIdentifier", "PoqexecFailure"],
        )
        .unwrap();
        assert!(read.key_found);
        assert_eq!(read.get("PendingXmlIdentifier").unwrap().bytes, identifier);
        assert!(read.get("PoqexecFailure").is_none());
    }

    #[test]
    fn what_is_not_a_hive_is_an_error() {
        assert!(matches!(
            read_key_values(b"not a hive", &[], &[]),
            Err(HiveError::NotAHive { .. }) | Err(HiveError::Truncated { .. })
        ));
        let mut bytes = HiveWriter::new("ROOT").to_bytes();
        // The root cell's size field zeroed: the root key is not an allocated cell.
        let root = u32::from_le_bytes(bytes[36..40].try_into().unwrap()) as usize + 4096;
        bytes[root..root + 4].fill(0);
        assert!(matches!(
            read_key_values(&bytes, &[], &["x"]),
            Err(HiveError::Damaged { .. })
        ));
    }
}
