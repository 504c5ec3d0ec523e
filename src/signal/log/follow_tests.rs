use super::*;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// How long a test waits for a line before declaring it lost.
const PATIENCE: Duration = Duration::from_secs(3);

/// A directory of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let unique = format!(
            "salve-follow-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Following {
    rx: tokio::sync::mpsc::Receiver<crate::signal::Observed>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Following {
    async fn start(path: &Path) -> Self {
        Self::start_with(path, None).await
    }

    async fn start_with(path: &Path, scanner: Option<Arc<LineScanner>>) -> Self {
        let (tx, rx) = crate::signal::event_queue(1024);
        let (stop, shutdown) = watch::channel(false);
        let (ready_tx, ready) = oneshot::channel();
        let task = tokio::spawn(follow_with_ready(
            path.to_path_buf(),
            scanner,
            tx,
            shutdown,
            Some(ready_tx),
        ));
        tokio::time::timeout(PATIENCE, ready)
            .await
            .unwrap()
            .unwrap();
        Following { rx, stop, task }
    }

    async fn next(&mut self) -> String {
        let got = tokio::time::timeout(PATIENCE, self.rx.recv()).await;
        match got.map(|o| o.map(|o| o.event)) {
            Ok(Some(Event::Log(LogLine { line, .. }))) => line,
            other => panic!("expected a log line, got {other:?}"),
        }
    }

    async fn expect(&mut self, lines: &[&str]) {
        for want in lines {
            assert_eq!(self.next().await, *want);
        }
    }

    async fn expect_silence(&mut self) {
        let got = tokio::time::timeout(Duration::from_millis(150), self.rx.recv()).await;
        assert!(got.is_err(), "unexpected {got:?}");
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("follower stops on shutdown")
            .unwrap();
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test]
async fn appended_lines_arrive_in_order_and_old_lines_are_skipped() {
    let dir = TempDir::new("append");
    let log = dir.join("error.log");
    append(&log, "old news\nunfinished old");
    let mut f = Following::start(&log).await;
    append(&log, "\n");
    // The tail of a line that was already half there at start is still a line.
    f.expect(&[""]).await;
    for i in 0..50 {
        append(&log, &format!("line {i}\n"));
    }
    for i in 0..50 {
        assert_eq!(f.next().await, format!("line {i}"));
    }
    f.stop().await;
}

#[tokio::test]
async fn a_missing_file_is_waited_for_and_read_from_its_start() {
    let dir = TempDir::new("missing");
    let log = dir.join("error.log");
    let mut f = Following::start(&log).await;
    append(&log, "first\nsecond\n");
    f.expect(&["first", "second"]).await;
    f.stop().await;
}

#[tokio::test]
async fn rename_and_create_rotation_loses_no_line() {
    let dir = TempDir::new("rotate");
    let log = dir.join("error.log");
    append(&log, "");
    let mut f = Following::start(&log).await;
    // The writer keeps its descriptor across the rename, as nginx does until USR1.
    let mut writer = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writer.write_all(b"before 1\nbefore 2\n").unwrap();
    std::fs::rename(&log, dir.join("error.log.1")).unwrap();
    writer.write_all(b"after rename, old file\n").unwrap();
    drop(writer);
    append(&log, "new file 1\nnew file 2\n");
    f.expect(&[
        "before 1",
        "before 2",
        "after rename, old file",
        "new file 1",
        "new file 2",
    ])
    .await;
    // Twice, so the watch moved to the new file.
    std::fs::rename(&log, dir.join("error.log.2")).unwrap();
    append(&log, "third file\n");
    f.expect(&["third file"]).await;
    f.stop().await;
}

#[tokio::test]
async fn copytruncate_restarts_at_zero() {
    let dir = TempDir::new("copytruncate");
    let log = dir.join("error.log");
    append(&log, "");
    let mut f = Following::start(&log).await;
    append(&log, "one\ntwo\n");
    f.expect(&["one", "two"]).await;
    // logrotate's copytruncate: copy the content away, then truncate in place; the
    // writer's O_APPEND descriptor then writes at the new end, 0.
    std::fs::copy(&log, dir.join("error.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "three\n");
    f.expect(&["three"]).await;
    f.expect_silence().await;
    f.stop().await;
}

#[tokio::test]
async fn truncation_then_longer_content_is_read_from_zero() {
    let dir = TempDir::new("truncate");
    let log = dir.join("error.log");
    append(&log, "");
    let mut f = Following::start(&log).await;
    append(
        &log,
        "a fairly long line to set the offset well past what comes next\n",
    );
    f.next().await;
    std::fs::write(&log, "short\n").unwrap();
    f.expect(&["short"]).await;
    f.stop().await;
}

#[tokio::test]
async fn a_partial_line_is_emitted_only_once_completed() {
    let dir = TempDir::new("partial");
    let log = dir.join("error.log");
    append(&log, "");
    let mut f = Following::start(&log).await;
    append(
        &log,
        "2026/11/24 22:00:30 [crit] 812#812: *41 connect() to unix:",
    );
    f.expect_silence().await;
    append(&log, "/run/php/php8.2-fpm.sock failed\n");
    f.expect(&[
        "2026/11/24 22:00:30 [crit] 812#812: *41 connect() to unix:/run/php/php8.2-fpm.sock failed",
    ])
    .await;
    f.expect_silence().await;
    f.stop().await;
}

#[tokio::test]
async fn a_deleted_and_recreated_file_is_followed() {
    let dir = TempDir::new("recreate");
    let log = dir.join("error.log");
    append(&log, "");
    let mut f = Following::start(&log).await;
    append(&log, "before delete\n");
    f.expect(&["before delete"]).await;
    std::fs::remove_file(&log).unwrap();
    append(&log, "recreated\n");
    f.expect(&["recreated"]).await;
    f.stop().await;
}

#[tokio::test]
async fn an_appended_line_reaches_the_channel_within_50ms() {
    let dir = TempDir::new("latency");
    let log = dir.join("error.log");
    append(&log, "");
    let mut f = Following::start(&log).await;
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let written = Instant::now();
        append(&log, &format!("latency probe {i}\n"));
        assert_eq!(f.next().await, format!("latency probe {i}"));
        worst = worst.max(written.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(worst < Duration::from_millis(50), "worst latency {worst:?}");
    f.stop().await;
}

#[tokio::test]
async fn follower_returns_when_nobody_listens() {
    let dir = TempDir::new("closed");
    let log = dir.join("error.log");
    append(&log, "");
    let (tx, rx) = crate::signal::event_queue(1);
    let (_stop, shutdown) = watch::channel(false);
    let (ready_tx, ready) = oneshot::channel();
    let task = tokio::spawn(follow_with_ready(
        log.clone(),
        None,
        tx,
        shutdown,
        Some(ready_tx),
    ));
    ready.await.unwrap();
    drop(rx);
    append(&log, "nobody reads this\n");
    tokio::time::timeout(PATIENCE, task)
        .await
        .expect("follower returns once the channel is closed")
        .unwrap();
}

#[tokio::test]
async fn a_filtered_follower_sends_only_lines_a_trigger_may_match_even_split_across_writes() {
    let dir = TempDir::new("filtered");
    let log = dir.join("error.log");
    append(&log, "");
    let scanner = Arc::new(LineScanner::new(&[r"too big header", r"^\[pool www\]"]).unwrap());
    let mut f = Following::start_with(&log, Some(scanner)).await;
    append(&log, "favicon.ico not found\nupstream sent too big");
    append(
        &log,
        " header while reading\nnoise\r\n[pool www] reached\r\n",
    );
    append(&log, "pool www without brackets\n");
    f.expect(&[
        "upstream sent too big header while reading",
        "[pool www] reached",
    ])
    .await;
    append(&log, "too big header again\n");
    f.expect(&["too big header again"]).await;
    f.stop().await;
}

/// A FIFO at the log's path would block open(2) until a writer came, on the agent's
/// only runtime thread. Multi-threaded here so a regression fails the timeout instead
/// of hanging the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_at_the_path_is_never_opened_and_a_file_replacing_it_is_followed() {
    let dir = TempDir::new("fifo");
    let log = dir.join("error.log");
    let c_path = std::ffi::CString::new(log.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: c_path is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let mut f = tokio::time::timeout(PATIENCE, Following::start(&log))
        .await
        .expect("the follower starts without waiting for a writer on the FIFO");
    f.expect_silence().await;
    std::fs::remove_file(&log).unwrap();
    append(&log, "a regular file again\n");
    f.expect(&["a regular file again"]).await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_to_a_device_is_not_read() {
    let dir = TempDir::new("device");
    let log = dir.join("error.log");
    std::os::unix::fs::symlink("/dev/zero", &log).unwrap();
    let mut f = tokio::time::timeout(PATIENCE, Following::start(&log))
        .await
        .expect("the follower starts");
    f.expect_silence().await;
    f.stop().await;
}

/// More than a wake-up's budget is waiting when the file is rotated: the rest of the
/// old file is read before the follower moves to the new one.
#[tokio::test]
async fn a_backlog_larger_than_one_wake_up_is_finished_before_a_rotation() {
    let dir = TempDir::new("backlog");
    let log = dir.join("error.log");
    append(&log, "");
    let mut f = Following::start(&log).await;
    let lines = 40_000; // ~2.4 MiB, past the 1 MiB a wake-up reads
    let mut text = String::new();
    for i in 0..lines {
        text.push_str(&format!(
            "backlog line {i:06} padding padding padding padding\n"
        ));
    }
    append(&log, &text);
    std::fs::rename(&log, dir.join("error.log.1")).unwrap();
    append(&log, "after rotation\n");
    for i in 0..lines {
        assert_eq!(
            f.next().await,
            format!("backlog line {i:06} padding padding padding padding")
        );
    }
    f.expect(&["after rotation"]).await;
    f.stop().await;
}
