//! TODO

pub fn validate(_g: &crate::cli::Global, _a: &crate::cli::ValidateArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet: validate")
}

pub fn run(_g: &crate::cli::Global, _a: &crate::cli::PlanArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet: plan")
}
