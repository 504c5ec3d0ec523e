//! A client hammering the lab at a steady rate, GET and POST half each, every answer
//! recorded: what the load-balancer tests and `make bench-lb` count 5xx with.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests waiting for their answer at once, at most.
const MAX_IN_FLIGHT: usize = 512;

/// One request of a [`Load`]: when it was sent, whether it was a POST, and the status
/// (`None`: no answer at all, which a client counts as an error too).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub sent: Instant,
    pub post: bool,
    pub status: Option<u16>,
}

impl Sample {
    pub fn failed(&self) -> bool {
        self.status.is_none_or(|s| s >= 500)
    }
}

/// A client hammering one port at a steady rate, GET and POST of ping.php at random,
/// each request on a connection of its own (as many clients would), recorded.
pub struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    runner: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16, per_second: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (halt, out) = (Arc::clone(&stop), Arc::clone(&samples));
        let gap = Duration::from_secs(1) / per_second.max(1);
        let runner = std::thread::spawn(move || {
            let mut next = Instant::now();
            // GET or POST at random, half each: strictly in turn, with two servers in
            // round robin, every POST would go to the same node.
            let mut bits = seed();
            let mut inflight = Vec::new();
            while !halt.load(Ordering::SeqCst) {
                // xorshift64: a coin per request, no crate needed for it.
                bits ^= bits << 13;
                bits ^= bits >> 7;
                bits ^= bits << 17;
                let post = bits & 1 == 1;
                let out = Arc::clone(&out);
                inflight.push(std::thread::spawn(move || {
                    let sent = Instant::now();
                    let status = request(port, post);
                    out.lock().unwrap_or_else(|e| e.into_inner()).push(Sample {
                        sent,
                        post,
                        status,
                    });
                }));
                inflight.retain(|t: &std::thread::JoinHandle<()>| !t.is_finished());
                // A load balancer that stopped answering must not make this client
                // grow without bound: at most this many requests wait at once (each
                // gives up after its timeouts).
                while inflight.len() >= MAX_IN_FLIGHT && !halt.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                    inflight.retain(|t: &std::thread::JoinHandle<()>| !t.is_finished());
                }
                next += gap;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            for t in inflight {
                let _ = t.join();
            }
        });
        Load {
            stop,
            samples,
            runner: Some(runner),
        }
    }

    /// Stops sending, waits for the answers, and returns every request.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(runner) = self.runner.take() {
            let _ = runner.join();
        }
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        samples.sort_by_key(|s| s.sent);
        samples
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(runner) = self.runner.take() {
            let _ = runner.join();
        }
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos) | 1
}

/// GET or POST /ping.php on `port`; the status, or `None` without an answer.
fn request(port: u16, post: bool) -> Option<u16> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = if post {
        "POST /ping.php HTTP/1.1\r\nHost: lab\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nnode=ok"
    } else {
        "GET /ping.php HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
    };
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = String::new();
    BufReader::new(stream).read_line(&mut head).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

/// GET and POST failures (5xx or no answer) apart, and how long the failures spanned.
pub fn failures(samples: &[Sample]) -> (usize, usize, Duration) {
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.failed()).collect();
    let gets = failed.iter().filter(|s| !s.post).count();
    let span = match (failed.first(), failed.last()) {
        (Some(first), Some(last)) => last.sent - first.sent,
        _ => Duration::ZERO,
    };
    (gets, failed.len() - gets, span)
}
