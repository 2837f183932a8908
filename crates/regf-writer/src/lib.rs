//! Deterministic writers of Windows registry files, for nextboot's tests, benchmarks and fuzz
//! targets: [`regf`] writes primary hive files, [`regf_log`] the transaction logs a crash
//! leaves beside them, [`system`] a SYSTEM hive with control sets and pending renames, and
//! [`servicing`] the SOFTWARE and COMPONENTS hives and the action list servicing leaves.
//!
//! Written from the format's specification, independently of nextboot's reader (this crate
//! does not depend on it), so that each checks the other.

pub mod regf;
pub mod regf_log;
pub mod servicing;
pub mod system;
