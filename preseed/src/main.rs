//! `preseed`: generate deployment configs the way MAAS does for custom images.
//!
//! - `preseed generate --machine M --image I [--merged]`: the curtin config, as a
//!   `#curtin-config-archive` of MAAS's ordered parts, or one merged document.
//! - `preseed user-data --machine M --image I`: the ephemeral OS cloud-config that runs
//!   `deployer install` on that config and reboots unless /tmp/block-reboot exists.
//! - `preseed check-resource --image I`: MAAS's upload rules for the image.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use preseed::generate::{self, userdata, Machine, Resource};

#[derive(Debug, Parser)]
#[command(
    name = "preseed",
    version,
    about = "Generate deployment configs the way MAAS does"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the curtin config for a machine and an image.
    Generate {
        #[arg(long, value_name = "FILE")]
        machine: PathBuf,
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
        /// One merged document instead of the ordered parts.
        #[arg(long, conflicts_with = "out_dir")]
        merged: bool,
        /// Write the parts as DIR/config-000.cfg, config-001.cfg... (MAAS's installer layout;
        /// give them to `deployer -c` in that order) and print their paths.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Print the cloud-config for the ephemeral OS that installs with deployer.
    UserData {
        #[arg(long, value_name = "FILE")]
        machine: PathBuf,
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
        /// Fetch the config from this URL (OAuth with the machine's token) instead of embedding it.
        #[arg(long, value_name = "URL")]
        config_url: Option<String>,
        /// Download the deployer binary from this URL first.
        #[arg(long, value_name = "URL")]
        deployer_url: Option<String>,
    },
    /// Check an image against MAAS's upload rules.
    CheckResource {
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
    },
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn inputs(machine: &Path, image: &Path) -> Result<(Machine, Resource)> {
    let m = generate::parse_machine(&machine.display().to_string(), &read(machine)?)?;
    let r = generate::parse_resource(&image.display().to_string(), &read(image)?)?;
    Ok((m, r))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate {
            machine,
            image,
            merged,
            out_dir,
        } => {
            let (m, r) = inputs(&machine, &image)?;
            let g = generate::generate(&m, &r)?;
            for w in &g.checked.warnings {
                eprintln!("preseed: warning: {w}");
            }
            match out_dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    for (name, text) in g.parts_yaml() {
                        let path = dir.join(name);
                        std::fs::write(&path, text)
                            .with_context(|| format!("writing {}", path.display()))?;
                        println!("{}", path.display());
                    }
                }
                None if merged => print!("{}", g.merged_yaml()),
                None => print!("{}", g.archive_yaml()),
            }
        }
        Command::UserData {
            machine,
            image,
            config_url,
            deployer_url,
        } => {
            let (m, r) = inputs(&machine, &image)?;
            let g = generate::generate(&m, &r)?;
            let opts = userdata::Options {
                config_url,
                deployer_url,
            };
            print!("{}", userdata::render(&m, &g, &opts));
        }
        Command::CheckResource { image } => {
            let r = generate::parse_resource(&image.display().to_string(), &read(&image)?)?;
            let c = generate::resource::check(&r).map_err(generate::Error::Resource)?;
            for w in &c.warnings {
                eprintln!("preseed: warning: {w}");
            }
            let base = if c.is_custom() {
                format!(", base image {}/{}", c.base_os, c.base_series)
            } else {
                String::new()
            };
            println!(
                "ok: {} ({}/{}{base}), source type {}",
                r.name, c.osystem, c.series, c.source_type
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("preseed: {e:#}");
            ExitCode::from(2)
        }
    }
}
