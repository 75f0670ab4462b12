//! Compiles `proto/shuzhu.proto` with `protox` (pure Rust, no system `protoc`) and generates the tonic
//! client and server code plus the encoded descriptor set for gRPC reflection.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/shuzhu.proto");
    let fds = protox::compile(["shuzhu.proto"], ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("shuzhu_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
