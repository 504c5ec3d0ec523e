//! A minimal blocking HTTP GET against the lab's nginx: enough for a health probe
//! and for the hang scenario's stuck requests, without pulling an async client into
//! the lab's blocking code.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// What a probe of the lab's ping page saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// nginx answered with this status code.
    Status(u16),
    /// No HTTP answer at all (connection refused, timeout, garbage).
    Failed(String),
}

impl Probe {
    pub fn status(&self) -> Option<u16> {
        match self {
            Probe::Status(code) => Some(*code),
            Probe::Failed(_) => None,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status() == Some(200)
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Status(code) => write!(f, "HTTP {code}"),
            Probe::Failed(why) => write!(f, "no answer ({why})"),
        }
    }
}

pub(crate) fn address(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Sends `GET path` and keeps the connection open, without reading the answer: the
/// caller decides how long the request stays in flight. HTTP/1.0, so nginx answers
/// with a plain body and closes the connection: no chunked encoding to decode.
pub(crate) fn send_get(port: u16, path: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&address(port), timeout)?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: salve-lab\r\n\r\n"
    )?;
    Ok(stream)
}

/// GETs `path` and returns the status code and body. `timeout` bounds the connect and
/// each read.
pub(crate) fn get(port: u16, path: &str, timeout: Duration) -> io::Result<(u16, String)> {
    let mut stream = send_get(port, path, timeout)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "not an HTTP answer: {:?}",
                    head.lines().next().unwrap_or("")
                ),
            )
        })?;
    Ok((status, body.to_owned()))
}

pub(crate) fn probe(port: u16, path: &str, timeout: Duration) -> Probe {
    match get(port, path, timeout) {
        Ok((status, _)) => Probe::Status(status),
        Err(e) => Probe::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    #[test]
    fn get_reads_status_and_body_from_a_closing_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 512];
            let n = conn.read(&mut request).unwrap();
            assert!(
                String::from_utf8_lossy(&request[..n]).starts_with("GET /ping.php HTTP/1.0\r\n")
            );
            conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\nnope")
                .unwrap();
        });
        let (status, body) = get(port, "/ping.php", Duration::from_secs(5)).unwrap();
        server.join().unwrap();
        assert_eq!((status, body.as_str()), (502, "nope"));
    }

    #[test]
    fn probe_reports_a_refused_connection_as_no_answer() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let probe = probe(port, "/ping.php", Duration::from_secs(2));
        assert!(matches!(probe, Probe::Failed(_)), "{probe}");
    }
}
