//! TODO

pub fn net_meta(_g: &crate::cli::Global, _a: &crate::cli::NetMetaArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet: net-meta")
}

pub fn render_cmd(
    _g: &crate::cli::Global,
    _a: &crate::cli::RenderNetworkArgs,
) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet: render-network")
}
