//! The links between services as the flags configure them (cli::MeshArgs):
//! this process's mTLS identity, the sockets of a gRPC server, and the
//! rule that plaintext gRPC stays on loopback unless the operator accepts
//! it (`--grpc-plaintext`).

use std::{net::SocketAddr, sync::Arc};

use switchboard_proto::{
    grpc::{self, Listeners, ServerTls},
    mtls::{Mtls, MtlsFiles, PeerName},
    tls_files::RELOAD_EVERY,
};
use tokio::net::TcpListener;

use crate::{cli::MeshArgs, services::BoxError, shutdown};

/// This process's side of the links between services.
#[derive(Debug, Clone)]
pub struct Mesh {
    pub mtls: Option<Arc<Mtls>>,
    /// Whether an identity is configured (loaded or not: `--check-config`
    /// reads no key).
    identity: bool,
    allow: Vec<PeerName>,
    health_listen: Option<SocketAddr>,
    plaintext: bool,
    files: Vec<std::path::PathBuf>,
}

impl Mesh {
    /// Reads the flags and, with mTLS, the CA and this service's pair.
    pub fn load(args: &MeshArgs) -> Result<Self, BoxError> {
        let mut mesh = Self::unloaded(args)?;
        if let (Some(ca), Some(cert), Some(key)) = (&args.mtls_ca, &args.mtls_cert, &args.mtls_key)
        {
            mesh.mtls = Some(Mtls::load(&MtlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })?);
        }
        Ok(mesh)
    }

    /// The flags alone, no file read (`--check-config`).
    pub fn unloaded(args: &MeshArgs) -> Result<Self, BoxError> {
        let given = [&args.mtls_ca, &args.mtls_cert, &args.mtls_key]
            .iter()
            .filter(|f| f.is_some())
            .count();
        if given != 0 && given != 3 {
            return Err("mutual TLS needs all of --mtls-ca, --mtls-cert and --mtls-key".into());
        }
        if args.grpc_health_listen.is_some() && given == 0 {
            return Err(
                "--grpc-health-listen is the plaintext health port of an mTLS server: it needs --mtls-ca, --mtls-cert and --mtls-key (without mTLS, probes use the gRPC port)"
                    .into(),
            );
        }
        Ok(Self {
            mtls: None,
            identity: args.mtls_ca.is_some(),
            allow: args.mtls_allow.clone(),
            health_listen: args.grpc_health_listen,
            plaintext: args.grpc_plaintext,
            files: [&args.mtls_ca, &args.mtls_cert, &args.mtls_key]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
        })
    }

    /// Whether this process has an mTLS identity configured.
    pub fn has_identity(&self) -> bool {
        self.identity
    }

    /// The plaintext health port asked for.
    pub fn health_listen(&self) -> Option<SocketAddr> {
        self.health_listen
    }

    /// The files of the identity (CA, certificate, key).
    pub fn files(&self) -> Vec<std::path::PathBuf> {
        self.files.clone()
    }

    /// Refuses plaintext gRPC served on `addr` off loopback, unless accepted.
    pub fn check_listen(&self, service: &str, addr: SocketAddr) -> Result<(), BoxError> {
        if !self.identity && !addr.ip().is_loopback() && !self.plaintext {
            return Err(format!(
                "refusing plaintext gRPC for {service} on the non-loopback address {addr}: give it \
                 an mTLS identity (--mtls-ca, --mtls-cert, --mtls-key; `switchboard certs generate` \
                 for a dev CA) or accept plaintext on a trusted network with --grpc-plaintext"
            )
            .into());
        }
        Ok(())
    }

    /// Refuses an `http://` URL of another service off loopback, unless
    /// accepted, and an `https://` one without an identity.
    pub fn check_url(&self, flag: &str, url: &str) -> Result<(), BoxError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| format!("{flag} {url}: not a URL"))?;
        match uri.scheme_str() {
            Some("https") if !self.identity => Err(format!(
                "{flag} {url}: https:// needs this service's mTLS identity (--mtls-ca, --mtls-cert, --mtls-key)"
            )
            .into()),
            Some("https") => Ok(()),
            Some("http") => {
                let host = uri.host().unwrap_or_default();
                if grpc::is_loopback_host(host) || self.plaintext {
                    Ok(())
                } else {
                    Err(format!(
                        "{flag} {url}: plaintext gRPC off loopback; use https:// with mTLS, or \
                         accept plaintext on a trusted network with --grpc-plaintext"
                    )
                    .into())
                }
            }
            _ => Err(format!("{flag} {url}: the URL must be http:// or https://").into()),
        }
    }

    /// Refuses the mesh flags where they mean nothing (`all` talks over
    /// loopback or in process).
    pub fn check_unused(&self, command: &str) -> Result<(), BoxError> {
        if self.identity || self.health_listen.is_some() {
            return Err(format!(
                "--mtls-* and --grpc-health-listen do not apply to `{command}`: its services \
                 talk in process or over loopback"
            )
            .into());
        }
        Ok(())
    }

    /// The sockets of a gRPC server on `listener`: mTLS letting in the
    /// allow-list (or `defaults`), and the plaintext health port if asked
    /// for. The pair is reloaded until SIGTERM.
    pub async fn listeners(
        &self,
        service: &str,
        listener: TcpListener,
        defaults: &[&str],
    ) -> Result<Listeners, BoxError> {
        let tls = self.mtls.as_ref().map(|mtls| {
            let allowed: Vec<PeerName> = if self.allow.is_empty() {
                defaults
                    .iter()
                    .map(|d| d.parse().expect("default peer names are valid"))
                    .collect()
            } else {
                self.allow.clone()
            };
            tracing::info!(
                service,
                allowed = %allowed.iter().map(PeerName::as_str).collect::<Vec<_>>().join(","),
                "gRPC over mutual TLS"
            );
            ServerTls {
                mtls: mtls.clone(),
                allowed: allowed.into(),
            }
        });
        let health = match self.health_listen {
            Some(addr) => {
                let health = crate::services::bind(addr).await?;
                crate::services::announce("grpc-health", "http", &health)?;
                Some(health)
            }
            None => None,
        };
        self.watch();
        Ok(Listeners {
            grpc: listener,
            tls,
            health,
        })
    }

    /// Reloads this process's pair when its files change, until SIGTERM.
    pub fn watch(&self) {
        if let Some(mtls) = &self.mtls {
            // The sender lives in the task: the watch ends with SIGTERM.
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let watch = mtls.watch(RELOAD_EVERY, stop_rx);
            tokio::spawn(async move {
                tokio::select! {
                    () = watch => {}
                    () = shutdown::signal() => { let _ = stop_tx.send(true); }
                }
            });
        }
    }
}
