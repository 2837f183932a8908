//! The command line: its arguments (clap), and what each command runs and prints.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::check::{CheckOptions, HashMode};
use crate::hive::{ControlSetChoice, LogChoice};
use crate::report::terminal::{fail, print, style};
use crate::report::{self, exit, FailOn, Format};

/// What the next boot of an offline Windows image will do to its files: which pending file
/// operations would put an older file over a newer one, or lose a queued fix.
#[derive(Parser)]
#[command(name = "nextboot", version, propagate_version = true)]
pub struct Cli {
    /// Read input files into memory instead of mapping them: for volumes that may change
    /// underneath (a live or failing disk), where a mapped file that shrinks would end the
    /// process (SIGBUS).
    #[arg(long, global = true)]
    no_mmap: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Replay the pending file operations of the next boot and report each one's effect.
    Check(CheckArgs),
    /// Print the version resources of PE files.
    Version(VersionArgs),
    /// Write a dirty hive with its transaction logs applied, for use with other tools.
    Recover(RecoverArgs),
    /// Write a .reg that rewrites the pending values without the operations that downgrade or
    /// are overridden (QChain, offline).
    Fix(FixArgs),
    /// Check installed file versions against a baseline of minimums (Qfecheck, offline), or
    /// write a baseline from a known-good image.
    Verify(VerifyArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff) to standard output.
    Man,
}

/// Runs a parsed command line; returns the exit status.
pub fn run(cli: Cli) -> u8 {
    crate::evidence::set_no_mmap(cli.no_mmap);
    match cli.command {
        Command::Check(args) => run_check(args),
        Command::Version(args) => run_version(args),
        Command::Recover(args) => run_recover(args),
        Command::Fix(args) => run_fix(args),
        Command::Verify(args) => run_verify(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let written = print(|out| {
                clap_complete::generate(shell, &mut command, "nextboot", out);
                Ok(())
            });
            if written {
                exit::CLEAN
            } else {
                exit::NOT_EXAMINED
            }
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            if print(|out| clap_mangen::Man::new(command).render(out)) {
                exit::CLEAN
            } else {
                exit::NOT_EXAMINED
            }
        }
    }
}

/// Prints a command line that did not parse (or `--help`, `--version`); returns the exit status.
pub fn usage(err: clap::Error) -> u8 {
    if !err.use_stderr() {
        let _ = err.print();
        return exit::CLEAN;
    }
    // A usage error quotes the argument as given, which may be text copied from evidence:
    // shown escaped, as every other message.
    let text = err.render().to_string();
    let lines: Vec<_> = text.split('\n').map(crate::text::escaped).collect();
    eprint!("{}", lines.join("\n"));
    exit::NOT_EXAMINED
}

/// The inputs shared by `check` and `fix`.
#[derive(Args)]
pub struct InputArgs {
    /// The Windows system volume (the drive Windows called C:, unless --system-drive): a
    /// mounted directory, or a disk image, volume image or block device read in place.
    root: Option<PathBuf>,
    /// When ROOT is a disk image with several Windows installations: the partition to check
    /// (numbered as Linux numbers them: GPT entry, MBR slot 1-4, logical from 5).
    #[arg(long, value_name = "N")]
    partition: Option<u32>,
    /// The SYSTEM hive [default: ROOT/Windows/System32/config/SYSTEM, any case].
    #[arg(long, value_name = "FILE")]
    hive: Option<PathBuf>,
    /// The SOFTWARE hive, for the action list PoqexecCmdline names [default: beside SYSTEM,
    /// any case].
    #[arg(long, value_name = "FILE")]
    software: Option<PathBuf>,
    /// The COMPONENTS hive, for the action list's identifier gate [default: beside SYSTEM,
    /// any case].
    #[arg(long, value_name = "FILE")]
    components: Option<PathBuf>,
    /// Another volume of the image: drive letter and directory, or an image (IMAGE, or
    /// IMAGE:N for its partition N) (repeatable).
    #[arg(long = "drive", value_name = "X:=DIR|IMAGE[:N]", value_parser = parse_drive)]
    drives: Vec<(char, PathBuf)>,
    /// A volume for `\Device\HarddiskVolumeN` paths: number and directory (repeatable).
    #[arg(long = "device", value_name = "N=DIR", value_parser = parse_device)]
    devices: Vec<(u32, PathBuf)>,
    /// The drive letter Windows gave ROOT.
    #[arg(long, value_name = "X:", default_value = "C:", value_parser = parse_letter)]
    system_drive: char,
    /// The control set whose queue is replayed: next (Select\Default), current, or a number.
    #[arg(long, value_name = "next|current|N", default_value = "next")]
    control_set: ControlSetChoice,
    /// A transaction log of a dirty hive (repeatable) [default: HIVE.LOG1, .LOG2, .LOG beside
    /// the hive, any case].
    #[arg(long = "log", value_name = "FILE", conflicts_with = "no_logs")]
    logs: Vec<PathBuf>,
    /// Read a dirty hive as it is, without its transaction logs.
    #[arg(long)]
    no_logs: bool,
    /// Accept a dirty hive whose logs could not be applied (check: exit 0/1 instead of 2).
    #[arg(long)]
    allow_dirty: bool,
    /// What to hash with SHA-256.
    #[arg(long, value_enum, default_value_t = HashArg::Hive)]
    hash: HashArg,
}

impl InputArgs {
    fn options(&self) -> CheckOptions {
        CheckOptions {
            root: self.root.clone(),
            hive: self.hive.clone(),
            software: self.software.clone(),
            components: self.components.clone(),
            drives: self.drives.clone(),
            devices: self.devices.clone(),
            system_drive: self.system_drive,
            partition: self.partition,
            control_set: self.control_set,
            hash: match self.hash {
                HashArg::None => HashMode::None,
                HashArg::Hive => HashMode::Hive,
                HashArg::All => HashMode::All,
                HashArg::Image => HashMode::Image,
            },
            logs: log_choice(self.logs.clone(), self.no_logs),
            command_line: std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        }
    }
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    inputs: InputArgs,
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Verdicts that make the exit status 1, and `alert` for alert findings (an action list
    /// shaped like Windows Downdate's): a comma list, or `never`.
    #[arg(
        long,
        value_name = "LIST|never",
        default_value = "downgrade,overridden,alert"
    )]
    fail_on: FailOn,
}

#[derive(Args)]
pub struct FixArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// The .reg file to write (a new file).
    #[arg(long, value_name = "FILE.reg")]
    out: PathBuf,
    /// Where the admin loads the offline SYSTEM hive (`reg load KEY ...\config\SYSTEM`).
    #[arg(long, value_name = "HKLM\\NAME", default_value = "HKLM\\NB_SYSTEM")]
    load_key: super::fix::LoadKey,
    /// Also disable each action list that runs at the next boot with alerts, as Microsoft's
    /// recovery does: delete COMPONENTS PendingXmlIdentifier (every list then fails the
    /// identifier gate) and SOFTWARE PoqexecCmdline when it names the list.
    #[arg(long)]
    disable_action_list: bool,
    /// Where the admin loads the offline SOFTWARE hive (with --disable-action-list).
    #[arg(long, value_name = "HKLM\\NAME", default_value = "HKLM\\NB_SOFTWARE")]
    software_load_key: super::fix::LoadKey,
    /// Where the admin loads the offline COMPONENTS hive (with --disable-action-list).
    #[arg(long, value_name = "HKLM\\NAME", default_value = "HKLM\\NB_COMPONENTS")]
    components_load_key: super::fix::LoadKey,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The Windows system volume (the drive Windows called C:, unless --system-drive): a
    /// mounted directory, or a disk image, volume image or block device read in place.
    root: PathBuf,
    /// When ROOT is a disk image with several Windows installations: the partition.
    #[arg(long, value_name = "N")]
    partition: Option<u32>,
    /// The baseline: files and their minimum versions (YAML, docs/verify.md).
    #[arg(
        long,
        value_name = "FILE.yaml",
        required_unless_present = "write_baseline",
        conflicts_with = "write_baseline"
    )]
    baseline: Option<PathBuf>,
    /// Write a baseline of ROOT's files instead: a new file, never inside ROOT.
    #[arg(long, value_name = "FILE.yaml", requires = "include")]
    write_baseline: Option<PathBuf>,
    /// With --write-baseline: the files to cover, relative to the system drive, any case; `*`
    /// and `?` within a name, `**` for any folders (repeatable).
    #[arg(long, value_name = "PATTERN", requires = "write_baseline")]
    include: Vec<super::verify::Pattern>,
    /// With --write-baseline: record each file's SHA-256 (files without a version too).
    /// Otherwise: report the SHA-256 of every file found.
    #[arg(long)]
    with_sha256: bool,
    /// The drive letter Windows gave ROOT.
    #[arg(long, value_name = "X:", default_value = "C:", value_parser = parse_letter)]
    system_drive: char,
    #[arg(long, value_enum, default_value_t = FormatArg::Table, conflicts_with = "write_baseline")]
    format: FormatArg,
}

#[derive(Args)]
pub struct RecoverArgs {
    /// The hive (primary file).
    hive: PathBuf,
    /// Where to write the recovered hive: a new file, never an input.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// A transaction log (repeatable) [default: HIVE.LOG1, .LOG2, .LOG beside the hive].
    #[arg(long = "log", value_name = "FILE")]
    logs: Vec<PathBuf>,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct VersionArgs {
    /// PE files (DLL, EXE, SYS, MUI...).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = VersionFormat::Table)]
    format: VersionFormat,
    /// Also print each file's SHA-256.
    #[arg(long)]
    sha256: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
    Jsonl,
    Csv,
    Yaml,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum VersionFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum HashArg {
    None,
    Hive,
    All,
    /// Everything `all` hashes, and each disk or volume image given, whole.
    Image,
}

fn run_check(args: CheckArgs) -> u8 {
    let options = args.inputs.options();
    let allow_dirty = args.inputs.allow_dirty;
    let report = match super::check::check(&options) {
        Ok(report) => report,
        Err(err) => return fail(&err),
    };
    if !print(|out| report::write(&report, args.format.into(), style(), out)) {
        return exit::NOT_EXAMINED;
    }
    let status = report.exit_status(&args.fail_on, allow_dirty);
    if let Some(why) = report.not_examined_because(allow_dirty) {
        eprintln!("nextboot: {why}; exit status 2.");
    }
    status
}

fn run_fix(args: FixArgs) -> u8 {
    let options = args.inputs.options();
    let lists = super::fix::ListFix {
        disable: args.disable_action_list,
        software_key: args.software_load_key.clone(),
        components_key: args.components_load_key.clone(),
    };
    match super::fix::run(
        &options,
        &args.load_key,
        &lists,
        &args.out,
        args.inputs.allow_dirty,
    ) {
        Ok(plan) => {
            let shown = args.out.display().to_string();
            if print(|out| report::write_fix_summary(&plan, &shown, out)) {
                exit::CLEAN
            } else {
                exit::NOT_EXAMINED
            }
        }
        Err(err) => fail(&err),
    }
}

fn run_verify(args: VerifyArgs) -> u8 {
    use super::verify;
    if let Some(out) = args.write_baseline {
        let options = verify::WriteOptions {
            root: args.root,
            system_drive: args.system_drive,
            partition: args.partition,
            include: args.include,
            with_sha256: args.with_sha256,
            out,
        };
        return match verify::write_baseline(&options) {
            Ok(written) => {
                if print(|out| written.write_summary(out)) {
                    exit::CLEAN
                } else {
                    exit::NOT_EXAMINED
                }
            }
            Err(err) => fail(&err),
        };
    }
    let Some(baseline) = args.baseline else {
        eprintln!("nextboot: give --baseline FILE.yaml or --write-baseline FILE.yaml");
        return exit::NOT_EXAMINED;
    };
    let options = verify::VerifyOptions {
        root: args.root,
        system_drive: args.system_drive,
        partition: args.partition,
        hash_all: args.with_sha256,
    };
    let report = match verify::verify_file(&options, &baseline) {
        Ok(report) => report,
        Err(err) => return fail(&err),
    };
    if !print(|out| report::write_verify(&report, args.format.into(), style(), out)) {
        return exit::NOT_EXAMINED;
    }
    report.exit_status()
}

fn log_choice(logs: Vec<PathBuf>, no_logs: bool) -> LogChoice {
    if no_logs {
        LogChoice::Ignore
    } else if logs.is_empty() {
        LogChoice::Beside
    } else {
        LogChoice::Files(logs)
    }
}

fn run_recover(args: RecoverArgs) -> u8 {
    match super::recover::recover(&args.hive, &log_choice(args.logs, false), &args.out) {
        Ok(done) => {
            let written = if args.json {
                print(|out| {
                    crate::text::to_json_pretty(out, &done)?;
                    writeln!(out)
                })
            } else {
                print(|out| done.write_summary(out))
            };
            if written {
                exit::CLEAN
            } else {
                exit::NOT_EXAMINED
            }
        }
        Err(err) => fail(&err),
    }
}

fn run_version(args: VersionArgs) -> u8 {
    let versions = super::version::run(&args.files, args.sha256);
    let written = print(|out| match args.format {
        VersionFormat::Table => report::write_versions_table(&versions.entries, style(), out),
        VersionFormat::Json => report::write_versions_json(&versions.entries, out),
    });
    if written {
        versions.exit_status()
    } else {
        exit::NOT_EXAMINED
    }
}

impl From<FormatArg> for Format {
    fn from(format: FormatArg) -> Format {
        match format {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Csv => Format::Csv,
            FormatArg::Yaml => Format::Yaml,
        }
    }
}

fn parse_letter(text: &str) -> Result<char, String> {
    let mut chars = text.chars();
    match (chars.next(), chars.next(), chars.next()) {
        (Some(letter), Some(':') | None, None) if letter.is_ascii_alphabetic() => {
            Ok(letter.to_ascii_uppercase())
        }
        _ => Err(format!("`{text}` is not a drive letter like C:")),
    }
}

fn parse_drive(text: &str) -> Result<(char, PathBuf), String> {
    let (letter, dir) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not X:=DIR"))?;
    if dir.is_empty() {
        return Err(format!("`{text}` names no directory after ="));
    }
    Ok((parse_letter(letter)?, PathBuf::from(dir)))
}

fn parse_device(text: &str) -> Result<(u32, PathBuf), String> {
    let (number, dir) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not N=DIR"))?;
    let number = number
        .parse::<u32>()
        .map_err(|_| format!("`{number}` is not a volume number (the N of HarddiskVolumeN)"))?;
    if dir.is_empty() {
        return Err(format!("`{text}` names no directory after ="));
    }
    Ok((number, PathBuf::from(dir)))
}
