//! A TCP relay between the gateway and the simulator's HTTPS port: the test's handle
//! on the direct link. `cut` closes the listening socket (new connections are
//! refused) and drops every relayed connection; `restore` listens again on the same port,
//! which a [`PortHold`] keeps reserved all along.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::PortHold;

pub struct Proxy {
    pub addr: SocketAddr,
    hold: PortHold,
    target: SocketAddr,
    token: Mutex<CancellationToken>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Arc<Proxy> {
        let hold = PortHold::loopback();
        let listener = hold.listen();
        let proxy = Arc::new(Proxy {
            addr: hold.addr,
            hold,
            target,
            token: Mutex::new(CancellationToken::new()),
        });
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let token = self.token.lock().unwrap().clone();
        let target = self.target;
        tokio::spawn(async move {
            loop {
                let (inbound, _) = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                };
                let token = token.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
    }

    /// The direct link dies: refused from now on, open connections dropped.
    pub fn cut(&self) {
        self.token.lock().unwrap().cancel();
    }

    /// The direct link is back on the same address.
    pub async fn restore(&self) {
        *self.token.lock().unwrap() = CancellationToken::new();
        self.serve(self.hold.listen());
    }
}
