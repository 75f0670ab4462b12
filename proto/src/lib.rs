//! Generated gRPC code for Shuzhu's contract (package `shuzhu.v1`): the `Node`, `Gateway` and `Audit`
//! services and their messages, plus the encoded descriptor set that the gateway serves through gRPC
//! reflection. Nothing but generated code lives here; conversions to domain types sit at each edge.
//! Depends on no other Shuzhu crate.

#![allow(unreachable_pub, clippy::all, clippy::pedantic)]

/// The `shuzhu.v1` package.
pub mod v1 {
    tonic::include_proto!("shuzhu.v1");
}

/// The encoded `FileDescriptorSet` of `shuzhu.v1`, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shuzhu_descriptor.bin"));
