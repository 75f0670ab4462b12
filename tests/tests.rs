//! Integration tests: real federations (nodes and a gateway in this process, over real TCP with
//! TLS and mutual TLS, real sled stores in temporary folders, real JWTs). One binary, several modules,
//! one shared fixture (see `util`).

mod util;

mod attacks;
mod audit;
mod auth;
mod books;
mod cli;
mod coverage;
mod cross;
mod deploy;
mod deviation;
mod fuzz_replay;
mod http;
mod import;
mod indicators;
mod journal;
mod limits;
mod mtls;
mod ops;
mod policy;
mod postgres;
mod privacy;
mod protection;
mod scrub;
