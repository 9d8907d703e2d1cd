//! TODO

pub fn run(_g: &crate::cli::Global, _a: &crate::cli::BlockMetaArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet: block-meta")
}
