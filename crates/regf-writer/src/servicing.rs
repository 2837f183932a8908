//! What servicing leaves for the next boot, as the tests and benchmarks need it: the SOFTWARE
//! and COMPONENTS hives with the values that name and gate an action list, SYSTEM's
//! `SetupExecute`, and the action list itself (`pending.xml`).

use crate::regf::{self, HiveWriter, REG_BINARY, REG_DWORD, REG_MULTI_SZ};
use crate::system::SystemHiveSpec;

/// Where SOFTWARE keeps the poqexec command.
pub const SIDE_BY_SIDE_CONFIGURATION: &str =
    r"Microsoft\Windows\CurrentVersion\SideBySide\Configuration";

/// The command servicing registers: poqexec and the default list.
pub const POQEXEC_DEFAULT: &str =
    r"C:\Windows\System32\poqexec.exe /display_progress \SystemRoot\WinSxS\pending.xml";

/// A SOFTWARE hive; `poqexec_cmdline`, when given, as the strings of `PoqexecCmdline`.
pub fn software_hive(poqexec_cmdline: Option<&[&str]>) -> HiveWriter {
    let mut hive = HiveWriter::new("ROOT");
    hive.file_name("SOFTWARE");
    hive.key(SIDE_BY_SIDE_CONFIGURATION);
    hive.value(
        r"Microsoft\Windows NT\CurrentVersion",
        "CurrentBuild",
        regf::REG_SZ,
        &regf::utf16z("22631"),
    );
    if let Some(strings) = poqexec_cmdline {
        hive.value(
            SIDE_BY_SIDE_CONFIGURATION,
            "PoqexecCmdline",
            REG_MULTI_SZ,
            &regf::multi_sz(strings),
        );
    }
    hive
}

/// A COMPONENTS hive; `identifier`, when given, as `PendingXmlIdentifier` (UTF-16LE text
/// without a NUL, REG_BINARY, as servicing writes it).
pub fn components_hive(identifier: Option<&str>) -> HiveWriter {
    let mut hive = HiveWriter::new("COMPONENTS");
    hive.file_name("COMPONENTS");
    hive.key("DerivedData\\Components");
    if let Some(identifier) = identifier {
        hive.value(
            "",
            "PendingXmlIdentifier",
            REG_BINARY,
            &regf::utf16(identifier),
        );
    }
    hive
}

/// Sets `SetupExecute` of a control set to these commands.
pub fn setup_execute(system: &mut SystemHiveSpec, set: u32, commands: &[&str]) {
    system.writer.value(
        &format!("ControlSet{set:03}\\Control\\Session Manager"),
        "SetupExecute",
        REG_MULTI_SZ,
        &regf::multi_sz(commands),
    );
}

/// Sets `Services\TrustedInstaller\Start` of a control set (3 is manual, 2 automatic).
pub fn trusted_installer_start(system: &mut SystemHiveSpec, set: u32, start: u32) {
    system.writer.value(
        &format!("ControlSet{set:03}\\Services\\TrustedInstaller"),
        "Start",
        REG_DWORD,
        &start.to_le_bytes(),
    );
}

/// An action list as servicing writes it (UTF-8 with a BOM, the template's layout), with
/// `primitives` (XML elements, one per line) as its first POQ.
pub fn action_list(identifier: &str, wcp_version: &str, primitives: &str) -> Vec<u8> {
    let mut text = String::from("\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    text.push_str(&format!(
        "<PendingTransaction Version=\"3.1\" WcpVersion=\"{wcp_version}\" Identifier=\"{identifier}\">\n"
    ));
    text.push_str("  <Transactions>\n    <Transaction Identifier=\"1\"/>\n  </Transactions>\n");
    text.push_str("  <POQ postAction=\"reboot\">\n");
    for line in primitives.lines().filter(|l| !l.trim().is_empty()) {
        text.push_str("    ");
        text.push_str(line.trim());
        text.push('\n');
    }
    text.push_str("  </POQ>\n  <POQ>\n  </POQ>\n</PendingTransaction>\n");
    text.into_bytes()
}
