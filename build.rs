//! Compiles `proto/` with protox (pure Rust: no `protoc` on the machine) into
//! prost types, tonic services and pbjson serde impls (the proto3 canonical
//! JSON mapping used by text WebSocket frames).

use std::{env, fs, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &[
    "proto/switchboard/v1/client.proto",
    "proto/switchboard/v1/signal.proto",
    "proto/switchboard/v1/auth.proto",
    "proto/switchboard/v1/room.proto",
    "proto/switchboard/v1/hooks.proto",
    "proto/grpc/health/v1/health.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::compile(PROTOS, ["proto"])?;
    let descriptor_bytes = fds.encode_to_vec();
    fs::write(
        out_dir.join("switchboard_descriptor.bin"),
        &descriptor_bytes,
    )?;

    tonic_prost_build::configure()
        // Rarely set, and carried by every signal: a pointer, not 32 bytes
        // in every copy of a message (a connection's future holds some).
        .boxed(".switchboard.v1.PeerSignal.probe")
        // The largest client message, once per session.
        .boxed(".switchboard.v1.ClientMessage.message.join")
        // Once per session each; every envelope is as large as its
        // largest event, and the relay path holds a few.
        .boxed(".switchboard.v1.EdgeEnvelope.event.open")
        .boxed(".switchboard.v1.EdgeEnvelope.event.resume")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        // Unknown fields are skipped (as protobuf does) so that an unknown
        // message type surfaces as `unknown_message`, not a parse error.
        .ignore_unknown_fields()
        .build(&[".switchboard.v1"])?;
    Ok(())
}
