//! deployer: a curtin-compatible deployment agent.
//!
//! Data flows one way: config -> plan -> disk -> target -> report.
//!
//! Entry points and the stage sequence:
//! - [`config`]: reading `-c` files, `--set` and $CONFIG into the typed, merged config.
//! - [`cli`]: clap types for `deployer ...` and the multi-call `curtin ...` command line; nothing else.
//! - [`install`]: the install command, the stages in curtin's order, short enough to read as a checklist.
//! - [`plan`]: the dry run that says what each stage would do.
//! - [`inspect`]: whether MAAS would deploy an image, checked offline and read-only.
//! - [`maas`]: a deployment from MAAS's metadata service (its curtin installer, read, not run).
//!
//! One module a stage (curtin's vocabulary):
//! - [`block_meta`]: the partitioning stage (storage config v1, simple mode, dd writing).
//! - [`extract`]: the extract stage (root tarballs into the mounted target).
//! - [`network`]: rendering network config for the deployed OS.
//! - [`curthooks`]: the curthooks stage (image hooks or builtin hooks).
//! - [`curtin_py`]: the `curtin` compat Python package carried for packer-maas hooks.
//! - [`hook`]: the hook (finalize) stage.
//! - [`commands`]: `*_commands` and `write_files`.
//! - [`image_check`]: the custom image must carry cloud-init (and netplan for Ubuntu), MAAS's check.
//!
//! The layers the stages stand on (a lower layer never reaches up into a stage):
//! - [`net`]: the one HTTP client (proxy, User-Agent, timeouts, retry policy, OAuth signing).
//! - [`source`]: where bytes come from (fetch, resume, detect, decode).
//! - [`io`]: small composable readers and writers (hash, limit, progress, zero-skipping writer).
//! - [`write_image`]: the dd pipeline from a source to a disk.
//! - [`grow`]: moving the GPT backup header and growing the root partition and filesystem.
//! - [`blockdev`]: block device discovery, safety checks, partition nodes, ioctls.
//! - [`mounts`]: the one reader of the mount table and the swap areas.
//! - [`sysblock`]: the kernel's view of block devices in sysfs (holders, slaves, dm, md, bcache).
//! - [`target`]: mounts, chroot, in-target execution.
//! - [`report`]: events, the webhook, progress.
//! - [`error`]: failure kinds and exit codes.
//! - [`signals`]: SIGTERM/SIGINT recorded, forwarded to the running child, cleaned up after.
//! - [`tools`]: every external command the agent runs, in one place.
//! - [`workdir`]: curtin's working dir (state files) and the environment of stage commands and hooks.

pub mod block_meta;
pub mod blockdev;
pub mod cli;
pub mod commands;
pub mod config;
pub mod curthooks;
pub mod curtin_py;
pub mod error;
pub mod extract;
pub mod fetch_config;
pub mod grow;
pub mod hook;
pub mod image_check;
pub mod inspect;
pub mod install;
pub mod io;
pub mod logging;
pub mod maas;
pub mod mounts;
pub mod net;
pub mod network;
pub mod plan;
pub mod report;
pub mod signals;
pub mod source;
pub mod sysblock;
pub mod target;
pub mod tools;
pub mod workdir;
pub mod write_image;
