//! The command line's end of the control socket.

use super::{Request, Response, MAX_REQUEST};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {path}: {source} (is `salve agent` running, and are you root or in its admin group?)")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("the agent at {path} did not answer: {why}")]
    Answer { path: String, why: String },
}

/// Sends `request` to the agent listening on `socket` and returns its answer.
pub async fn ask(
    socket: &Path,
    request: &Request,
    within: Duration,
) -> Result<Response, ClientError> {
    let path = socket.display().to_string();
    let answer_error = |why: String| ClientError::Answer {
        path: path.clone(),
        why,
    };
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.clone(),
                source,
            })?;
        let (read, mut write) = stream.into_split();
        let mut text = serde_json::to_vec(request).map_err(|e| answer_error(e.to_string()))?;
        text.push(b'\n');
        write
            .write_all(&text)
            .await
            .map_err(|e| answer_error(e.to_string()))?;
        let mut line = Vec::new();
        // The status of many policies is long, but not without end.
        let limit = (MAX_REQUEST * 1024) as u64;
        BufReader::new(read)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| answer_error(e.to_string()))?;
        serde_json::from_slice::<Response>(&line)
            .map_err(|e| answer_error(format!("unreadable answer: {e}")))
    };
    match tokio::time::timeout(within, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(answer_error(format!("no answer within {within:?}"))),
    }
}
