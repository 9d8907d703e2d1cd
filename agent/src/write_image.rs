//! TODO

pub fn run(_g: &crate::cli::Global, _a: &crate::cli::WriteImageArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet: write-image")
}
