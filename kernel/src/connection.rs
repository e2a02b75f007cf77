//! How the kernel and its in-process plugins reach the broker: the embedded one
//! (in-process, with the kernel's policy as its hooks) or an external one over TCP.

use std::collections::BTreeMap;
use std::sync::Arc;

use hcore_client::{Client, ClientError, ClientOptions};

use crate::policy::{KernelPolicy, KERNEL_ID};

#[derive(Clone)]
pub enum Connection {
    /// The embedded broker, in-process, started with `policy` as its hooks.
    Embedded {
        broker: hcore_broker::BrokerHandle,
        policy: Arc<KernelPolicy>,
    },
    /// An external broker (`mqtt://host:port`); its ACL enforces identities. The kernel
    /// logs in as `username` (or, without one, with its login from `logins`); each
    /// in-process plugin with its own login, as itself.
    External {
        url: String,
        username: Option<String>,
        password: Option<String>,
        /// name -> password (`users::Logins`).
        logins: BTreeMap<String, String>,
        /// The CA to trust for an `mqtts://` URL.
        ca: Option<std::path::PathBuf>,
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
                logins,
                ca,
            } => {
                let mut options = options;
                options.tls.ca = ca.clone();
                let own = logins.get(&options.id);
                if options.id == KERNEL_ID && username.is_some() {
                    options.username = username.clone();
                    options.password = password.clone();
                } else if let Some(pw) = own {
                    options.username = Some(options.id.clone());
                    options.password = Some(pw.clone());
                } else {
                    tracing::warn!(id = %options.id, "no login for this client on the external broker (hcore export mosquitto or hcore export nats makes one); connecting without one");
                }
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
