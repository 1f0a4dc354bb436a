//! Not the product: what developers, the tests, the demo and the benchmark run against.
//!
//! - [`devstack`]: a throwaway Dovecot + Postfix on loopback, from a temporary directory.
//! - [`demo`]: `caseclerk demo`, the whole product against the devstack.
//! - [`bench`]: `caseclerk bench`, how fast caseclerk ingests and classifies.
//! - [`chaos`]: `caseclerk chaos`, letters sent twice or lost under `kill -9` of the daemon.
//! - [`membench`]: `caseclerk bench --first-run N | --burst N`, the real process's peak memory.
//! - [`scalebench`]: `caseclerk bench --cases N`, planning, digest, export and `case` at 1,000
//!   and N cases created through the real ingest path.
//! - [`sendbench`]: `caseclerk bench --letters N`, letters a second handed to a local Postfix.
//!
//! Must not: be needed by the daemon in production.

pub mod bench;
pub mod chaos;
pub mod demo;
pub mod devstack;
pub mod membench;
pub mod pagebench;
pub mod scalebench;
pub mod sendbench;
