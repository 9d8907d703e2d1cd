//! The one HTTP client of deployer, for images, configs and the webhook: how it is built
//! ([`client`]: proxy, User-Agent, timeouts), when a failed exchange is tried again
//! ([`retry`]: exponential backoff with full jitter, `Retry-After` honoured), and how MAAS's
//! requests are signed ([`oauth`]). Range resume of image downloads is the source layer's
//! ([`crate::source::http`]), built on these.

pub mod client;
pub mod oauth;
pub mod retry;

pub use client::{client, error_chain, send, stall_timeout, Failure, USER_AGENT};
pub use oauth::OauthCreds;
pub use retry::{Backoff, Policy};
