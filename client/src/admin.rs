//! The operator's side of an admin session: connect with the operator's key, pin the node's
//! key, say Hello, then one request and one reply at a time.

use compushare_protocol::msg::{
    AdminError, AdminToManager, ManagerToAdmin, Scope, ADMIN_DOOR, PROTOCOL_VERSION,
};
use compushare_protocol::secure::net::{connect_tcp, TcpChannel, HANDSHAKE_TIMEOUT};
use compushare_protocol::secure::{ChannelError, Identity};
use compushare_protocol::types::PublicKey;

/// Why an admin request did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminClientError {
    /// The secure channel failed (network, handshake, wrong node key, a broken frame).
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The node refused the session (not an operator's key, another protocol version).
    #[error("manager refused the session (code {code}): {reason}")]
    Refused { code: u16, reason: String },
    /// The node answered the request with an error.
    #[error("{code:?}: {message}")]
    Failed { code: AdminError, message: String },
    /// The node sent something out of order.
    #[error("unexpected reply from the manager: {0}")]
    Unexpected(&'static str),
}

/// An operator's session with a node.
pub struct AdminClient {
    ch: TcpChannel,
    scope: Scope,
}

impl AdminClient {
    /// Connects as `me`, checks the node's key and says Hello.
    pub async fn connect(
        addr: impl tokio::net::ToSocketAddrs,
        me: &Identity,
        manager: &PublicKey,
    ) -> Result<AdminClient, AdminClientError> {
        let mut ch = connect_tcp(addr, me, manager, HANDSHAKE_TIMEOUT).await?;
        ch.send(&AdminToManager::Hello {
            version: PROTOCOL_VERSION,
            door: ADMIN_DOOR,
        })
        .await?;
        match *ch.recv::<ManagerToAdmin>().await? {
            ManagerToAdmin::Welcome { scope, .. } => Ok(AdminClient { ch, scope }),
            ManagerToAdmin::Refused(r) => Err(AdminClientError::Refused {
                code: r.code,
                reason: r.reason.as_str().to_owned(),
            }),
            _ => Err(AdminClientError::Unexpected("expected Welcome")),
        }
    }

    /// What this operator may act on.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Sends one request and returns its reply; an `Error` reply is `Err(Failed)`.
    pub async fn request(
        &mut self,
        req: &AdminToManager,
    ) -> Result<ManagerToAdmin, AdminClientError> {
        self.ch.send(req).await?;
        match *self.ch.recv::<ManagerToAdmin>().await? {
            ManagerToAdmin::Error { code, message } => Err(AdminClientError::Failed {
                code,
                message: message.as_str().to_owned(),
            }),
            ManagerToAdmin::Refused(r) => Err(AdminClientError::Refused {
                code: r.code,
                reason: r.reason.as_str().to_owned(),
            }),
            m => Ok(m),
        }
    }

    /// The channel (tests tamper with frames through it).
    pub fn channel(&mut self) -> &mut TcpChannel {
        &mut self.ch
    }
}
