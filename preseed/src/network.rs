//! TODO: filled by the config-model work (issue 2).
