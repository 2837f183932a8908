//! `SYSTEM\MountedDevices`: which volume each drive letter and volume GUID had.
//!
//! Value names are `\DosDevices\X:` and `\??\Volume{GUID}`; the data identifies the volume:
//! 12 bytes for an MBR partition (disk signature, byte offset), `DMIO:ID:` and a 16-byte GPT
//! partition GUID, or a device path (removable media) as UTF-16.

use serde::Serialize;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, KnownLayout, Unaligned};

use super::cells::{Cells, Damage, DataCheck};
use super::{checked_data, value_bytes, CheckedKey, HiveError};

/// One value of `MountedDevices`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MountedDevice {
    /// The value name: `\DosDevices\C:` or `\??\Volume{...}`.
    pub name: String,
    pub volume: VolumeIdentity,
}

/// How the mount manager identified a volume.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VolumeIdentity {
    Gpt { partition_guid: String },
    Mbr { disk_signature: String, offset: u64 },
    Other { description: String },
}

impl MountedDevice {
    /// `C` for `\DosDevices\C:`.
    pub fn drive_letter(&self) -> Option<char> {
        let rest = self.name.strip_prefix("\\DosDevices\\")?;
        let mut chars = rest.chars();
        match (chars.next(), chars.next(), chars.next()) {
            (Some(letter), Some(':'), None) if letter.is_ascii_alphabetic() => {
                Some(letter.to_ascii_uppercase())
            }
            _ => None,
        }
    }

    /// The GUID of `\??\Volume{GUID}`, upper case, without braces.
    pub fn volume_guid(&self) -> Option<String> {
        let rest = self.name.strip_prefix("\\??\\Volume{")?;
        Some(rest.strip_suffix('}')?.to_ascii_uppercase())
    }
}

impl std::fmt::Display for VolumeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VolumeIdentity::Gpt { partition_guid } => {
                write!(f, "GPT partition {{{partition_guid}}}")
            }
            VolumeIdentity::Mbr {
                disk_signature,
                offset,
            } => write!(f, "MBR disk {disk_signature}, partition at byte {offset}"),
            VolumeIdentity::Other { description } => write!(f, "{description}"),
        }
    }
}

/// The most data read from one value: real values are 12 (MBR), 24 (GPT) or a device path
/// of a few hundred bytes. A larger one is described by its size only.
const MAX_VALUE_BYTES: usize = 4096;

pub(super) fn read(
    cells: &Cells<'_>,
    key: &CheckedKey<'_, '_>,
) -> Result<Vec<MountedDevice>, HiveError> {
    let mut devices = Vec::new();
    let mut total = 0usize;
    let structure = |source| HiveError::Structure {
        what: "MountedDevices values".into(),
        source,
    };
    cells
        .values(&key.cell, &key.what)
        .map_err(|damage| HiveError::Damaged {
            what: "MountedDevices values".into(),
            damage,
        })?;
    let Some(values) = key.node.values() else {
        return Ok(devices);
    };
    for value in values.map_err(structure)? {
        let value = value.map_err(structure)?;
        let name = value.name().map_err(structure)?.to_string_lossy();
        let what = format!("MountedDevices value {name}");
        let check = checked_data(cells, &value, &what)?;
        let size = value.data_size() as usize;
        let volume = if check != DataCheck::Empty && size > MAX_VALUE_BYTES {
            VolumeIdentity::Other {
                description: format!("{size} bytes of unknown form"),
            }
        } else {
            // Values may share data cells; all of them together cannot hold more than the hive.
            total = total.saturating_add(size);
            if total > cells.len() {
                return Err(HiveError::Damaged {
                    what: "MountedDevices values".into(),
                    damage: Damage::ValuesTooLarge {
                        bins_size: cells.len(),
                    },
                });
            }
            identify(&value_bytes(cells, &value, check, &what)?)
        };
        devices.push(MountedDevice { name, volume });
    }
    Ok(devices)
}

pub fn identify(data: &[u8]) -> VolumeIdentity {
    if let Some(guid) = data.strip_prefix(b"DMIO:ID:").filter(|g| g.len() == 16) {
        return VolumeIdentity::Gpt {
            partition_guid: format_guid(guid),
        };
    }
    if let Ok(mbr) = MbrVolume::ref_from_bytes(data) {
        return VolumeIdentity::Mbr {
            disk_signature: format!("{:08X}", mbr.disk_signature.get()),
            offset: mbr.offset.get(),
        };
    }
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .take_while(|&u| u != 0)
        .collect();
    let text = String::from_utf16_lossy(&units);
    // Device paths are ASCII (`_??_USBSTOR#Disk&Ven_...`); anything else is shown by size.
    let description = if text.len() > 1 && text.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        format!("device {text}")
    } else {
        format!("{} bytes of unknown form", data.len())
    };
    VolumeIdentity::Other { description }
}

/// An MBR volume's value: the disk signature and the partition's byte offset (12 bytes).
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct MbrVolume {
    disk_signature: U32,
    offset: U64,
}

/// A GUID as stored: the first three fields little-endian, the last eight bytes in order.
#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Guid {
    data1: U32,
    data2: U16,
    data3: U16,
    data4: [u8; 8],
}

/// A GUID (its first 16 bytes) in its registry spelling.
pub fn format_guid(bytes: &[u8]) -> String {
    let Ok((guid, _)) = Guid::ref_from_prefix(bytes) else {
        return String::new();
    };
    let tail: String = guid.data4.iter().map(|b| format!("{b:02X}")).collect();
    format!(
        "{:08X}-{:04X}-{:04X}-{}-{}",
        guid.data1.get(),
        guid.data2.get(),
        guid.data3.get(),
        &tail[..4],
        &tail[4..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt_mbr_and_device_identities() {
        let mut gpt = b"DMIO:ID:".to_vec();
        gpt.extend_from_slice(&[
            0x78, 0x56, 0x34, 0x12, 0xbc, 0x9a, 0xf0, 0xde, 1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        assert_eq!(
            identify(&gpt),
            VolumeIdentity::Gpt {
                partition_guid: "12345678-9ABC-DEF0-0102-030405060708".into()
            }
        );
        let mut mbr = 0xA1B2C3D4u32.to_le_bytes().to_vec();
        mbr.extend_from_slice(&1_048_576u64.to_le_bytes());
        assert_eq!(
            identify(&mbr),
            VolumeIdentity::Mbr {
                disk_signature: "A1B2C3D4".into(),
                offset: 1_048_576
            }
        );
        let usb: Vec<u8> = "_??_USBSTOR#Disk&Ven_X"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert!(
            matches!(identify(&usb), VolumeIdentity::Other { description } if description.contains("USBSTOR"))
        );
        assert!(
            matches!(identify(&[1, 2, 3]), VolumeIdentity::Other { description } if description.contains("3 bytes"))
        );
    }

    #[test]
    fn names() {
        let device = |name: &str| MountedDevice {
            name: name.into(),
            volume: identify(&[]),
        };
        assert_eq!(device("\\DosDevices\\c:").drive_letter(), Some('C'));
        assert_eq!(device("\\DosDevices\\C:x").drive_letter(), None);
        assert_eq!(
            device("\\??\\Volume{ab-cd}").volume_guid().as_deref(),
            Some("AB-CD")
        );
    }
}
