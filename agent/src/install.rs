//! TODO

pub fn run(_g: &crate::cli::Global, _a: &crate::cli::InstallArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet: install")
}
