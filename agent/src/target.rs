//! TODO

pub fn in_target(_g: &crate::cli::Global, _a: &crate::cli::InTargetArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet: in-target")
}
