//! Connections that close gracefully: a lingering close, as web servers
//! do (nginx's `lingering_close`).
//!
//! hyper answers some requests without reading their bodies and then
//! closes the connection: a request it cannot parse (431 for too many or
//! too large headers, 400), or one the service answered early without
//! leaving the connection reusable. Closing a socket that still has unread
//! input makes the kernel reset the connection, and a client still writing
//! its body (many write the whole body before they read: Python's urllib,
//! many Java clients) then sees "broken pipe" or "connection reset", never
//! the answer. So a connection is not simply dropped: its write side is
//! shut down after the answer went out, and what the client still sends is
//! read and thrown away, up to [`LINGER_MAX_BYTES`] and [`LINGER_MAX_TIME`],
//! before the socket is closed.
//!
//! `body::limit` drains what a request leaves unread so the connection can
//! be reused; this covers every close that happens anyway.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The most a closing connection reads and throws away.
pub const LINGER_MAX_BYTES: usize = 8 * 1024 * 1024;
/// The longest a closing connection waits for its client to stop sending.
pub const LINGER_MAX_TIME: Duration = Duration::from_secs(10);
/// The most connections lingering at once: past it a connection closes at
/// once, as it would without lingering, so a flood of requests that are
/// answered and closed cannot hold sockets and memory without bound.
pub const LINGER_MAX_CONNECTIONS: usize = 1024;

static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// A TCP listener whose connections close gracefully.
pub struct LingeringListener(pub TcpListener);

impl Listener for LingeringListener {
    type Io = LingeringStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        (
            LingeringStream {
                inner: Some(stream),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The peer of a connection, for `ConnectInfo` (failed authentications
/// are counted per client address).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, LingeringListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, LingeringListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// A connection that lingers when dropped (see the module's doc).
pub struct LingeringStream {
    /// Always `Some` until dropped.
    inner: Option<TcpStream>,
}

impl LingeringStream {
    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let Some(stream) = self.inner.take() else {
            return;
        };
        // Outside a runtime (never, in the service), or with too many
        // lingering already, the socket just closes.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if LINGERING.fetch_add(1, Ordering::Relaxed) >= LINGER_MAX_CONNECTIONS {
            LINGERING.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        runtime.spawn(async move {
            linger(stream).await;
            LINGERING.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Shut the write side (the answer is out; the client sees its end), then
/// read and drop what the client still sends, within the bounds, so the
/// close does not reset the connection under the answer.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut buf = [0u8; 8 * 1024];
    let mut read = 0usize;
    let discard = async {
        while read <= LINGER_MAX_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_MAX_TIME, discard).await;
}
