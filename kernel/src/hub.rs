//! One constructor for a whole hcore from one configuration: the embedded broker with the
//! kernel's policy as its hooks (both on the configured root) and the kernel, or the kernel
//! alone as a client of an external broker.
//!
//! The broker's listeners are bound first but accept connections only once the kernel is
//! ready, so a client that connects while hcore starts waits in the listen backlog instead
//! of sending requests nobody answers yet.

use std::net::SocketAddr;
use std::sync::Arc;

use hcore_broker::{Broker, BrokerHandle};

use crate::settings::Settings;
use crate::{Connection, Kernel, KernelError, KernelPolicy, PluginFactory};

/// A running hcore: broker (unless external) and kernel.
pub struct Hub {
    broker: Option<Broker>,
    kernel: Kernel,
}

impl Hub {
    /// Starts everything `settings` describe, with these in-process plugins.
    pub async fn start(
        settings: &Settings,
        plugins: Vec<(String, PluginFactory)>,
    ) -> Result<Hub, KernelError> {
        if let Some(url) = &settings.broker_url {
            tracing::info!(%url, "using an external broker; its ACL enforces identities (see docs/ARCHITECTURE.md)");
            let logins = crate::users::Logins::open(&settings.kernel.data_dir).read()?;
            let connection = Connection::External {
                url: url.clone(),
                username: settings.broker_username.clone(),
                password: settings.broker_password.clone(),
                logins,
                ca: settings.broker_ca.clone(),
            };
            let kernel = Kernel::start(settings.kernel.clone(), connection, plugins).await?;
            return Ok(Hub {
                broker: None,
                kernel,
            });
        }
        let users = Arc::new(crate::users::Users::open(&settings.kernel.data_dir));
        users.check_policy()?;
        users.refresh();
        for l in &settings.broker.listeners {
            if let Some(r) = &l.anonymous_role {
                r.parse::<crate::users::Role>().map_err(|e| {
                    KernelError::Config(format!("listener {}: anonymous_role: {e}", l.name))
                })?;
            }
        }
        let policy = Arc::new(KernelPolicy::new(&settings.kernel.root).with_users(users));
        let mut config = settings.broker.clone();
        if config.persistence_dir.is_none() {
            // Retained messages and sessions live next to the kernel's data.
            config.persistence_dir = Some(settings.kernel.data_dir.join("broker"));
        }
        let mut broker = Broker::bind(config, policy.clone())
            .await
            .map_err(|e| KernelError::Broker(e.to_string()))?;
        let connection = Connection::Embedded {
            broker: broker.handle(),
            policy,
        };
        let kernel = match Kernel::start(settings.kernel.clone(), connection, plugins).await {
            Ok(k) => k,
            Err(e) => {
                broker.shutdown().await;
                return Err(e);
            }
        };
        broker.accept();
        Ok(Hub {
            broker: Some(broker),
            kernel,
        })
    }

    /// The embedded broker's listening addresses (empty with an external broker).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.broker.as_ref().map_or(&[], |b| b.local_addrs())
    }

    /// The embedded broker, for in-process clients.
    pub fn broker(&self) -> Option<BrokerHandle> {
        self.broker.as_ref().map(Broker::handle)
    }

    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Stops the kernel (answering what is in flight, and everything that arrives until
    /// the connections close `unavailable`), then the broker.
    pub async fn shutdown(self) {
        self.kernel.wind_down().await;
        if let Some(b) = self.broker {
            b.shutdown().await;
        }
        self.kernel.disconnect().await;
    }
}
