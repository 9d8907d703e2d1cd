//! The partitioning stage (curtin `block-meta`): wipe, partition, format and mount what the
//! storage config says, or the simple flat layout when there is none.

pub mod localcfg;

pub fn run(_g: &crate::cli::Global, _a: &crate::cli::BlockMetaArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet: block-meta")
}
