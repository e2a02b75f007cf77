//! How the kernel and its in-process plugins reach the broker: the embedded one
//! (in-process, with the kernel's policy as its hooks) or an external one over TCP.

use std::sync::Arc;

use hcore_client::{Client, ClientError, ClientOptions};

use crate::policy::KernelPolicy;

#[derive(Clone)]
pub enum Connection {
    /// The embedded broker, in-process, started with `policy` as its hooks.
    Embedded {
        broker: hcore_broker::BrokerHandle,
        policy: Arc<KernelPolicy>,
    },
    /// An external broker (`mqtt://host:port`); its ACL enforces identities.
    External {
        url: String,
        username: Option<String>,
        password: Option<String>,
    },
}

impl Connection {
    /// Connects a client (the kernel, an in-process plugin) this way.
    pub async fn client(&self, options: ClientOptions) -> Result<Client, ClientError> {
        match self {
            Connection::Embedded { broker, .. } => {
                Client::connect_in_process(broker, options).await
            }
            Connection::External {
                url,
                username,
                password,
            } => {
                let mut options = options;
                options.username = username.clone();
                options.password = password.clone();
                Client::connect(url, options).await
            }
        }
    }

    /// The embedded broker's policy, if any.
    pub fn policy(&self) -> Option<&Arc<KernelPolicy>> {
        match self {
            Connection::Embedded { policy, .. } => Some(policy),
            Connection::External { .. } => None,
        }
    }
}
