//! Command-line types (clap) for `deployer ...` and for the multi-call `curtin ...` form. Nothing
//! else lives here: each subcommand's behaviour is in the module of its stage.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Flags shared by every subcommand, accepted before or after it (as curtin accepts `-c`
/// before the subcommand).
#[derive(Debug, Clone, Default, Args)]
pub struct Global {
    /// Config file or URL; repeat to merge several in order (later ones win). Without any,
    /// the file named by $CONFIG is read, as curtin's stage commands do.
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        value_name = "FILE_OR_URL"
    )]
    pub config: Vec<String>,
    /// Set one key, curtin style: `key/sub=value`, or `json:key=<json>`.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// More output; repeat for more.
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print the whole error chain and backtrace on failure.
    #[arg(long, global = true)]
    pub showtrace: bool,
    /// Write the log to this file instead of stderr (as curtin does; the file is truncated).
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Log lines as text, or as one JSON object a line (for a console read by a machine).
    /// Also $DEPLOYER_LOG_FORMAT; stage commands of an install inherit it.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Accepted for curtin compatibility; deployer has no dependencies to install.
    #[arg(long, global = true, hide = true)]
    pub install_deps: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "deployer",
    version,
    about = "A curtin-compatible deployment agent"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// `curtin [flags] SUBCOMMAND ...`: the same commands under curtin's names.
#[derive(Debug, Parser)]
#[command(
    name = "curtin",
    version,
    about = "deployer, answering curtin's command line"
)]
pub struct CurtinCli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and merge configs, print warnings, fail on invalid config.
    Validate(ValidateArgs),
    /// Dry run: the stages in curtin's order and what each would do. Touches nothing.
    Plan(PlanArgs),
    /// Deploy: run every stage, report every event.
    Install(InstallArgs),
    /// Stream a dd image (any curtin dd type) onto a disk or disk image file.
    WriteImage(WriteImageArgs),
    /// The partitioning stage: wipe, partition, format and mount per the storage config.
    BlockMeta(BlockMetaArgs),
    /// The extract stage: the config's sources into the mounted target.
    Extract(TargetArgs),
    /// The network stage: write the config's network to OUTPUT_NETWORK_CONFIG.
    NetMeta(NetMetaArgs),
    /// The curthooks stage: the image's /curtin/curtin-hooks, or the builtin hooks.
    Curthooks(CurthooksArgs),
    /// The hook stage: the image's /curtin/finalize.
    Hook(TargetArgs),
    /// Run a command chrooted in the target.
    InTarget(InTargetArgs),
    /// Print the network config rendered for a deployed OS.
    RenderNetwork(RenderNetworkArgs),
    /// Tell whether MAAS would deploy an image (read-only): exit 0 ok, 1 warnings, 2 errors.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: a path, or an http(s):// or file:// URL.
    pub image: String,
    /// The MAAS filetype it would be uploaded with (ddgz, ddtgz, tgz, ...), checked against
    /// the bytes.
    #[arg(long, value_name = "T")]
    pub filetype: Option<String>,
    /// The base_image it would be uploaded with (default: MAAS's, the commissioning OS).
    #[arg(long, value_name = "OS/SERIES")]
    pub base_image: Option<String>,
    /// One JSON document (schema deployer-inspect/1) instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print the merged config as YAML.
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The disk (or disk image file) the plan is for; otherwise the config's.
    #[arg(long, value_name = "DEV_OR_FILE")]
    pub target: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Deploy to this block device or disk image file (a file is attached to a loop device).
    #[arg(long, value_name = "DEV_OR_IMAGE_FILE")]
    pub target: Option<PathBuf>,
    /// Size of the disk image file to create when --target names a missing file (e.g. 8G).
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// Sources, added as `sources.NN_cmdline` in curtin's way.
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WriteImageArgs {
    /// `dd-gz:http://...`, a bare URL or a path (its format is detected).
    pub source: String,
    /// A block device or a disk image file.
    pub target: PathBuf,
    /// Expected SHA-256 of the source as served (hex).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Expected SHA-512 of the source as served (hex).
    #[arg(long, value_name = "HEX")]
    pub sha512: Option<String>,
    /// Expected size of the source as served, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub size: Option<u64>,
    /// Another URL of the same image, tried when the source fails for good (repeatable, in
    /// order; as a source's `mirrors:` in a config).
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
    /// Do not grow the root partition and filesystem to fill the disk.
    #[arg(long)]
    pub no_grow: bool,
    /// Write the source even when its first MiB holds no partition table and no filesystem
    /// signature (deliberate raw data); without it such a source is refused.
    #[arg(long)]
    pub raw_data: bool,
    /// Print a machine-readable summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BlockMetaArgs {
    /// curtin's mode argument; `custom` when a storage config is present, `simple` otherwise.
    #[arg(value_enum)]
    pub mode: Option<BlockMetaMode>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Unmount everything under the target mount instead.
    #[arg(long)]
    pub umount: bool,
    /// Devices for simple mode.
    #[arg(short = 'D', long = "devices")]
    pub devices: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlockMetaMode {
    Simple,
    SimpleBoot,
    Custom,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The mounted target; default $TARGET_MOUNT_POINT.
    #[arg(
        long = "target-mount",
        short = 't',
        env = "TARGET_MOUNT_POINT",
        value_name = "DIR"
    )]
    pub target_mount: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CurthooksArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Run one builtin step only (`builtin`, `apply-networking-config`, `writing-etc-fstab`,
    /// `update-initramfs`, `configuring-bootloader`): how deployer's curtin Python package
    /// reaches deployer's implementation.
    #[arg(long, hide = true, value_name = "STEP")]
    pub step: Option<String>,
}

#[derive(Debug, Args)]
pub struct NetMetaArgs {
    /// curtin's mode: auto, custom, copy, dhcp, disabled.
    pub mode: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Args)]
pub struct InTargetArgs {
    /// The target root; default $TARGET_MOUNT_POINT.
    #[arg(
        short = 't',
        long = "target",
        env = "TARGET_MOUNT_POINT",
        value_name = "DIR"
    )]
    pub target: Option<PathBuf>,
    /// Accepted for curtin compatibility (curtin passes stdin through unless this is set).
    #[arg(long = "allow-daemons", short = 'a')]
    pub allow_daemons: bool,
    /// The command and its arguments (after `--`, which curtin also lets one omit).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenderNetworkArgs {
    /// netplan, eni or passthrough.
    #[arg(long, value_enum, default_value = "netplan")]
    pub format: NetworkFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkFormat {
    Netplan,
    Eni,
    Passthrough,
}
