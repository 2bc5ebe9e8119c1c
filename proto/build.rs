//! Compiles `proto/rota/v1/*.proto` with protox (pure Rust), so building rota needs no system
//! `protoc`. The encoded descriptor set is written to `OUT_DIR` for gRPC server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/rota/v1/agent.proto",
        "proto/rota/v1/control.proto",
        "proto/rota/v1/upload.proto",
    ];
    // Neither protox nor tonic-prost-build emits rerun-if-changed for the inputs.
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("rota_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The agent rpc is called `Connect` (docs/architecture.md); the generated `connect`
        // constructor would clash with it, so clients are built with `::new(channel)` instead.
        .build_transport(false)
        // Log bytes as `bytes::Bytes`: the coordinator decodes a chunk without copying it out
        // of the receive buffer, and the agent sends a just-spooled piece without a copy.
        .bytes(".rota.v1.LogChunk.data")
        .bytes(".rota.v1.ArtifactChunk.data")
        .bytes(".rota.v1.ArtifactData.data")
        .bytes(".rota.v1.UploadArtifactRequest.data")
        .compile_fds(fds)?;
    Ok(())
}
