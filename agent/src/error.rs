//! What kind of failure ended a command, and the exit code that says so.
//!
//! Stages return `anyhow::Result`; where a failure is created, it is tagged with a [`Kind`]
//! (`.kind(Kind::Source)`), so that `main` can map it to a distinct exit code and the report
//! layer can say which part failed without knowing every module's error type.

use std::fmt;

/// The family of a failure. Exit codes are part of the CLI contract (README, docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The config could not be read, parsed or validated.
    Config,
    /// The image could not be fetched, decoded or verified.
    Source,
    /// The disk, partitions, filesystems or mounts.
    Storage,
    /// A hook, a `*_commands` entry or a command in the target failed.
    Hook,
    /// The custom image lacks what the provisioning server needs (cloud-init, netplan).
    Image,
    /// Stopped by this signal (SIGTERM, SIGINT) and cleaned up: exit code 128 + signal.
    Interrupted(i32),
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Config => 2,
            Kind::Source => 4,
            Kind::Storage => 5,
            Kind::Hook => 6,
            Kind::Image => 7,
            Kind::Interrupted(sig) => 128 + sig,
        }
    }

    /// The kind a deployer child process reported through its exit code.
    pub fn from_exit_code(code: i32) -> Option<Kind> {
        if (129..160).contains(&code) {
            return Some(Kind::Interrupted(code - 128));
        }
        [
            Kind::Config,
            Kind::Source,
            Kind::Storage,
            Kind::Hook,
            Kind::Image,
        ]
        .into_iter()
        .find(|k| k.exit_code() == code)
    }
}

/// Exit code for a failure with no [`Kind`] (curtin exits 3 on any exception).
pub const EXIT_OTHER: i32 = 3;

/// The marker carried in an error chain.
#[derive(Debug)]
pub struct Tagged(pub Kind);

impl fmt::Display for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} error", self.0)
    }
}

impl std::error::Error for Tagged {}

/// Tag errors with a [`Kind`].
pub trait KindExt<T> {
    fn kind(self, kind: Kind) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> KindExt<T> for Result<T, E> {
    fn kind(self, kind: Kind) -> anyhow::Result<T> {
        self.map_err(|e| tag(e.into(), kind))
    }
}

/// Tag one error; the message the user sees is unchanged.
pub fn tag(err: anyhow::Error, kind: Kind) -> anyhow::Error {
    if kind_of(&err).is_some() {
        return err;
    }
    err.context(TagContext(kind))
}

/// The first kind found in the chain.
pub fn kind_of(err: &anyhow::Error) -> Option<Kind> {
    // anyhow downcasts through every context layer to a context type.
    err.downcast_ref::<TagContext>().map(|t| t.0).or_else(|| {
        err.chain()
            .find_map(|e| e.downcast_ref::<Tagged>().map(|t| t.0))
    })
}

/// The exit code for an error.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    kind_of(err).map(Kind::exit_code).unwrap_or(EXIT_OTHER)
}

/// Render an error for a user: every layer of context, outermost first, joined with ": ".
/// Use this rather than `{:#}`, which would show the empty kind marker.
pub fn render(err: &anyhow::Error) -> String {
    err.chain()
        .map(|e| e.to_string())
        .filter(|m| !m.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Mark an error whose message the command already printed (install's curtin-style
/// "Installation failed with exception" line): `main` then only sets the exit code.
pub fn reported(err: anyhow::Error) -> anyhow::Error {
    err.context(Reported)
}

pub fn is_reported(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Reported>().is_some()
}

#[derive(Debug)]
struct Reported;

impl fmt::Display for Reported {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// A context layer that carries the kind and prints nothing of its own (see [`render`]).
#[derive(Debug)]
struct TagContext(Kind);

impl fmt::Display for TagContext {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_survives_context_and_maps_to_exit_code() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("boom"));
        let e = r.kind(Kind::Source).unwrap_err();
        let e = e.context("writing image");
        assert_eq!(kind_of(&e), Some(Kind::Source));
        assert_eq!(exit_code(&e), 4);
        assert_eq!(exit_code(&anyhow::anyhow!("x")), EXIT_OTHER);
        assert_eq!(render(&e), "writing image: boom");
        assert_eq!(Kind::Interrupted(15).exit_code(), 143);
        assert_eq!(Kind::from_exit_code(130), Some(Kind::Interrupted(2)));
        assert_eq!(Kind::from_exit_code(6), Some(Kind::Hook));
        let r = reported(e);
        assert!(is_reported(&r) && !is_reported(&anyhow::anyhow!("x")));
        assert_eq!(
            (exit_code(&r), render(&r)),
            (4, "writing image: boom".into())
        );
    }
}
