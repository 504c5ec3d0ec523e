//! A tiny HTTP/1 server for tests here and in `action::notify`: answers canned responses
//! and reports each request it received, so tests assert on what actually went over the
//! wire. Only ever listens on 127.0.0.1.

use crate::policy::HttpUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

pub(crate) fn response(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `responses` in order, one per connection, repeating the last one forever.
/// Yields each request received (head and body) as text.
pub(crate) async fn serve(responses: Vec<Vec<u8>>) -> (HttpUrl, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url_for(&listener, "/health");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for i in 0.. {
            let (mut stream, _) = listener.accept().await.unwrap();
            let request = read_request(&mut stream).await;
            let _ = tx.send(request);
            let reply = &responses[i.min(responses.len() - 1)];
            let _ = stream.write_all(reply).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, rx)
}

/// A URL whose port refuses connections. The socket is bound but not listening, and
/// stays bound while the guard lives: a port that was merely freed could be handed
/// to a listener in a test running in parallel.
pub(crate) fn refused_url() -> (HttpUrl, TcpSocket) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let url = HttpUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    (url, socket)
}

pub(crate) fn url_for(listener: &TcpListener, path: &str) -> HttpUrl {
    let port = listener.local_addr().unwrap().port();
    HttpUrl::parse(&format!("http://127.0.0.1:{port}{path}")).unwrap()
}

/// Reads the head and, when there is a Content-Length, the body.
pub(crate) async fn read_request(stream: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return text;
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&data).to_string(),
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}
