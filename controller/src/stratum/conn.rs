//! Pool addresses and the byte stream to a pool: `stratum+tcp://` over TCP and
//! `stratum+ssl://` over TLS (rustls with the ring provider), the certificate checked
//! against the system's roots or a configured CA file.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{
    self, pki_types::pem::PemObject, pki_types::CertificateDer, pki_types::ServerName,
};

/// Why a pool address is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is not one this client speaks.
    #[error("unsupported scheme {0:?} (use stratum+tcp:// or stratum+ssl://)")]
    Scheme(String),
    /// No port, or not a number.
    #[error("pool address {0:?} needs host:port")]
    Port(String),
    /// Empty host.
    #[error("pool address {0:?} has no host")]
    Host(String),
}

/// Why connecting failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// TCP connect failed (refused, unreachable...).
    #[error("connect to {addr}: {source}")]
    Io {
        /// host:port.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// Connect or TLS handshake took too long.
    #[error("connect to {0}: timed out")]
    Timeout(String),
    /// The CA file could not be read or holds no certificate.
    #[error("CA file {path}: {why}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// No usable system root certificates.
    #[error("no system root certificates found: {0}")]
    NoRoots(String),
    /// The host is not a valid TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    /// The TLS handshake failed (certificate not trusted, protocol error).
    #[error("TLS handshake with {addr}: {source}")]
    Handshake {
        /// host:port.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Transport of a pool address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Ssl,
}

/// A parsed pool address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUrl {
    /// Transport.
    pub scheme: Scheme,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl PoolUrl {
    /// Parses `stratum+tcp://host:port`, `stratum+ssl://host:port` (also `stratum+tls`,
    /// `tcp://`, `ssl://`, `tls://`) or a bare `host:port` (TCP).
    pub fn parse(s: &str) -> Result<PoolUrl, UrlError> {
        let s = s.trim();
        let (scheme, rest) = match s.split_once("://") {
            Some((sch, rest)) => {
                let scheme = match sch.to_ascii_lowercase().as_str() {
                    "stratum+tcp" | "tcp" | "stratum" => Scheme::Tcp,
                    "stratum+ssl" | "stratum+tls" | "ssl" | "tls" => Scheme::Ssl,
                    other => return Err(UrlError::Scheme(other.to_owned())),
                };
                (scheme, rest)
            }
            None => (Scheme::Tcp, s),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| UrlError::Port(s.to_owned()))?;
        let port: u16 = port.parse().map_err(|_| UrlError::Port(s.to_owned()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(UrlError::Host(s.to_owned()));
        }
        Ok(PoolUrl {
            scheme,
            host: host.to_owned(),
            port,
        })
    }

    /// The same pool on another port.
    pub fn with_port(&self, port: u16) -> PoolUrl {
        PoolUrl {
            port,
            ..self.clone()
        }
    }

    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sch = match self.scheme {
            Scheme::Tcp => "stratum+tcp",
            Scheme::Ssl => "stratum+ssl",
        };
        write!(f, "{sch}://{}", self.addr())
    }
}

/// Where TLS trust comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// A PEM file of CA certificates to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
}

/// A bidirectional byte stream to a pool.
pub trait PoolStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PoolStream for T {}

fn roots(tls: &TlsSettings) -> Result<rustls::RootCertStore, ConnectError> {
    let mut store = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| ConnectError::CaFile {
                    path: path.clone(),
                    why: e.to_string(),
                })?
                .collect::<Result<_, _>>()
                .map_err(|e| ConnectError::CaFile {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ConnectError::CaFile {
                    path: path.clone(),
                    why: "no usable certificate".into(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "none installed".into());
                return Err(ConnectError::NoRoots(why));
            }
        }
    }
    Ok(store)
}

/// A rustls client configuration using the ring provider and the given trust.
pub fn client_config(tls: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::TlsConfig(e.to_string()))?
        .with_root_certificates(roots(tls)?)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Opens the stream to `url`, TLS included, within `timeout`.
pub async fn connect(
    url: &PoolUrl,
    tls: &TlsSettings,
    timeout: Duration,
) -> Result<Box<dyn PoolStream>, ConnectError> {
    let addr = url.addr();
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr.as_str()))
        .await
        .map_err(|_| ConnectError::Timeout(addr.clone()))?
        .map_err(|source| ConnectError::Io {
            addr: addr.clone(),
            source,
        })?;
    // Shares are tiny and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    match url.scheme {
        Scheme::Tcp => Ok(Box::new(tcp)),
        Scheme::Ssl => {
            let name = ServerName::try_from(url.host.clone())
                .map_err(|_| ConnectError::ServerName(url.host.clone()))?;
            let connector = tokio_rustls::TlsConnector::from(client_config(tls)?);
            let stream = tokio::time::timeout(timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| ConnectError::Timeout(addr.clone()))?
                .map_err(|source| ConnectError::Handshake { addr, source })?;
            Ok(Box::new(stream))
        }
    }
}
