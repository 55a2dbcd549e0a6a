//! Ctrl-C for `pay`, registered when `pay` starts (not when first awaited), so an
//! interrupt that comes while the first events are printed is not lost.

use std::io;

pub(super) struct Interrupts {
    #[cfg(unix)]
    inner: tokio::signal::unix::Signal,
    #[cfg(windows)]
    inner: tokio::signal::windows::CtrlC,
}

impl Interrupts {
    pub(super) fn register() -> io::Result<Interrupts> {
        #[cfg(unix)]
        let inner = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        #[cfg(windows)]
        let inner = tokio::signal::windows::ctrl_c()?;
        Ok(Interrupts { inner })
    }

    /// The next Ctrl-C.
    pub(super) async fn next(&mut self) {
        if self.inner.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}
