//! TODO

pub fn run(_g: &crate::cli::Global, _a: &crate::cli::TargetArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet: curthooks")
}
