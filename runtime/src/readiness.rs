//! The application's readiness probe on 127.0.0.1: a TCP connect, or an HTTP GET answering 2xx.
//! Polled until it passes or its timeout runs out.

use std::time::Duration;

use companion_config::Readiness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const INTERVAL: Duration = Duration::from_millis(200);
const ATTEMPT: Duration = Duration::from_secs(2);

/// Waits until the probe passes; the error says what the last attempt saw.
pub async fn wait(probe: &Readiness) -> Result<String, String> {
    let timeout = match probe {
        Readiness::Tcp { timeout_secs, .. } | Readiness::Http { timeout_secs, .. } => {
            Duration::from_secs((*timeout_secs).into())
        }
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match tokio::time::timeout(ATTEMPT, attempt(probe)).await {
            Ok(Ok(ok)) => return Ok(ok),
            Ok(Err(e)) => e,
            Err(_) => "no answer within 2 s".into(),
        };
        if tokio::time::Instant::now() + INTERVAL > deadline {
            return Err(format!("not ready after {timeout:?}: {last}"));
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

async fn attempt(probe: &Readiness) -> Result<String, String> {
    match probe {
        Readiness::Tcp { port, .. } => TcpStream::connect(("127.0.0.1", *port))
            .await
            .map(|_| format!("tcp 127.0.0.1:{port} accepts"))
            .map_err(|e| format!("tcp 127.0.0.1:{port}: {e}")),
        Readiness::Http { port, path, .. } => http_get(*port, path).await,
    }
}

async fn http_get(port: u16, path: &str) -> Result<String, String> {
    let place = format!("http://127.0.0.1:{port}{path}");
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("{place}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{place}: {e}"))?;
    let mut head = [0u8; 64];
    let n = s
        .read(&mut head)
        .await
        .map_err(|e| format!("{place}: {e}"))?;
    let status = status_code(&head[..n]).ok_or_else(|| format!("{place}: not an HTTP answer"))?;
    if (200..300).contains(&status) {
        Ok(format!("{place} answered {status}"))
    } else {
        Err(format!("{place} answered {status}"))
    }
}

/// The status code of an `HTTP/1.x NNN` status line.
fn status_code(head: &[u8]) -> Option<u16> {
    let rest = head
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| head.strip_prefix(b"HTTP/1.0 "))?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 503 x"), Some(503));
        assert_eq!(status_code(b"SSH-2.0"), None);
        assert_eq!(status_code(b"HTTP/1.1 2"), None);
    }

    #[tokio::test]
    async fn tcp_probe_fails_with_the_reason_then_passes() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let probe = Readiness::Tcp {
            port,
            timeout_secs: 0,
        };
        let err = wait(&probe).await.unwrap_err();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        let _l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        assert!(wait(&probe).await.is_ok());
    }
}
